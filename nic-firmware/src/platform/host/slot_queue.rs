//! The software NIC's memory queue: a bounded ring of frame-sized byte slots with a single
//! producer end and a single consumer end that never wait for each other.
//!
//! Layout after DPDK's `rte_ring`: the producer's and the consumer's free-running positions sit
//! on their own cache lines; the producer owns the slots from its position up to the consumer's
//! position plus the capacity, the consumer owns the slots from its position up to the
//! producer's. Each end publishes with one Release store per call, however many entries the
//! call moves, and reads the other end's position with one Acquire load: bursts cost one pair
//! of atomics, not one per frame. Bytes are written and read in place through closures, so a
//! frame is copied once on the way in and once on the way out.
//!
//! Each end is also behind a spin lock held for one call, so that any number of threads may
//! push (or pop) through a shared reference: with one producer and one consumer (the network
//! side and the NIC side of a wire) each lock is only ever taken by its one owner, an
//! uncontended compare-and-swap per call.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

use std::boxed::Box;
use std::vec::Vec;

use crate::tm::pool::FRAME_CAPACITY;

/// One entry: its tag, its length and its bytes.
struct Slot<T> {
    tag: UnsafeCell<T>,
    len: UnsafeCell<usize>,
    bytes: UnsafeCell<[u8; FRAME_CAPACITY]>,
}

/// One end of the ring: its position (entries it has moved, free-running) and the lock whoever
/// plays this end holds for one call.
#[repr(align(128))]
struct End {
    position: AtomicUsize,
    lock: spin::Mutex<()>,
}

impl End {
    fn new() -> Self {
        End {
            position: AtomicUsize::new(0),
            lock: spin::Mutex::new(()),
        }
    }

    /// Moves this end from `from` on by `moved` entries (a Release store, so that the other
    /// end's Acquire load of the position sees what this end did to the slots first).
    fn publish(&self, from: usize, moved: usize) {
        if moved > 0 {
            self.position
                .store(from.wrapping_add(moved), Ordering::Release);
        }
    }
}

/// A bounded queue of byte strings of at most [`FRAME_CAPACITY`] bytes, each with a small
/// `Copy` tag, in slots allocated once: pushing and popping copy bytes and never allocate.
pub struct SlotQueue<T: Copy + Default> {
    slots: Box<[Slot<T>]>,
    /// Entries the queue holds at most (the slot count may be larger: a power of two).
    capacity: usize,
    /// Slot count minus one.
    mask: usize,
    producer: End,
    consumer: End,
}

// SAFETY: the slots' cells are only reached by the producer end for slots it owns and by the
// consumer end for slots it owns (see `push_with` and `pop_with`); each end is serialised by its
// lock, and ownership passes between the ends through Release/Acquire pairs on the positions.
// Tags move between threads, hence `T: Send`.
unsafe impl<T: Copy + Default + Send> Sync for SlotQueue<T> {}

impl<T: Copy + Default> SlotQueue<T> {
    /// A queue of `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let count = capacity.next_power_of_two();
        let slots: Vec<Slot<T>> = (0..count)
            .map(|_| Slot {
                tag: UnsafeCell::new(T::default()),
                len: UnsafeCell::new(0),
                bytes: UnsafeCell::new([0; FRAME_CAPACITY]),
            })
            .collect();
        SlotQueue {
            slots: slots.into_boxed_slice(),
            capacity,
            mask: count - 1,
            producer: End::new(),
            consumer: End::new(),
        }
    }

    /// Appends up to `max` entries, each written in place by `fill` into the next free slot:
    /// `fill` returns the entry's tag and length (clamped to the slot), or `None` to stop. Returns
    /// how many entries were appended; stops early when the queue is full. `fill` must not use
    /// this queue.
    pub fn push_with(
        &self,
        max: usize,
        mut fill: impl FnMut(&mut [u8; FRAME_CAPACITY]) -> Option<(T, usize)>,
    ) -> usize {
        let _producer = self.producer.lock.lock();
        // Only the producer (this call, under the lock) stores the tail.
        let tail = self.producer.position.load(Ordering::Relaxed);
        // Acquire: pairs with the consumer's Release store in `pop_with`; its reads of the slots
        // below `head` are done before this call writes them again.
        let head = self.consumer.position.load(Ordering::Acquire);
        let free = self.capacity.saturating_sub(tail.wrapping_sub(head));
        let mut pushed = 0;
        while pushed < max.min(free) {
            let slot = &self.slots[tail.wrapping_add(pushed) & self.mask];
            // SAFETY: positions tail..head + capacity belong to the producer: the consumer reads
            // only below the published tail, and this end is serialised by its lock, so no
            // other reference to this slot's cells exists during the call.
            let entry = unsafe { fill(&mut *slot.bytes.get()) };
            let Some((tag, len)) = entry else { break };
            // SAFETY: as above, the producer owns the slot.
            unsafe {
                *slot.tag.get() = tag;
                *slot.len.get() = len.min(FRAME_CAPACITY);
            }
            pushed += 1;
        }
        // Pairs with the consumer's Acquire load of the tail in `pop_with`: the slot writes
        // above happen before it reads them.
        self.producer.publish(tail, pushed);
        pushed
    }

    /// Hands up to `max` entries, oldest first, to `take` (tag and bytes); an entry is removed
    /// when `take` returns true, and the call stops at the first `false` (that entry stays).
    /// Returns how many entries were removed. `take` must not use this queue.
    pub fn pop_with(&self, max: usize, mut take: impl FnMut(T, &[u8]) -> bool) -> usize {
        let _consumer = self.consumer.lock.lock();
        // Only the consumer (this call, under the lock) stores the head.
        let head = self.consumer.position.load(Ordering::Relaxed);
        // Acquire: pairs with the producer's Release store in `push_with`; the slots below
        // `tail` are fully written.
        let tail = self.producer.position.load(Ordering::Acquire);
        let waiting = tail.wrapping_sub(head).min(self.capacity);
        let mut popped = 0;
        while popped < max.min(waiting) {
            let slot = &self.slots[head.wrapping_add(popped) & self.mask];
            // SAFETY: positions head..tail belong to the consumer: the producer writes only at
            // or above the published tail, and this end is serialised by its lock, so no
            // `&mut` to this slot's cells exists during the call.
            let (tag, len, bytes) =
                unsafe { (*slot.tag.get(), *slot.len.get(), &*slot.bytes.get()) };
            let bytes = bytes.get(..len).unwrap_or_default();
            if !take(tag, bytes) {
                break;
            }
            popped += 1;
        }
        // Pairs with the producer's Acquire load of the head in `push_with`: the reads above
        // happen before it reuses these slots.
        self.consumer.publish(head, popped);
        popped
    }

    /// Appends a copy of `bytes` with `tag`; false (and nothing queued) when full or when
    /// `bytes` is longer than a slot.
    pub fn push(&self, tag: T, bytes: &[u8]) -> bool {
        if bytes.len() > FRAME_CAPACITY {
            return false;
        }
        let pushed = self.push_with(1, |slot| {
            slot[..bytes.len()].copy_from_slice(bytes);
            Some((tag, bytes.len()))
        });
        pushed == 1
    }

    /// Copies the oldest entry into `out` (truncated to `out`'s length) and removes it;
    /// returns its tag and full length.
    pub fn pop_into(&self, out: &mut [u8]) -> Option<(T, usize)> {
        let mut popped = None;
        self.pop_with(1, |tag, bytes| {
            let copy = bytes.len().min(out.len());
            out[..copy].copy_from_slice(&bytes[..copy]);
            popped = Some((tag, bytes.len()));
            true
        });
        popped
    }

    /// The oldest entry as an owned vector (test convenience; allocates).
    pub fn pop(&self) -> Option<(T, Vec<u8>)> {
        let mut popped = None;
        self.pop_with(1, |tag, bytes| {
            popped = Some((tag, bytes.to_vec()));
            true
        });
        popped
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        let head = self.consumer.position.load(Ordering::Acquire);
        let tail = self.producer.position.load(Ordering::Acquire);
        tail.wrapping_sub(head).min(self.capacity)
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries the queue holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries ever pushed.
    pub fn pushed(&self) -> u64 {
        self.producer.position.load(Ordering::Relaxed) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;

    #[test]
    fn keeps_order_tags_and_bytes() {
        let queue: SlotQueue<u32> = SlotQueue::new(3);
        assert!(queue.push(1, b"one"));
        assert!(queue.push(2, b"two!"));
        assert!(queue.push(3, &[]));
        assert!(
            !queue.push(4, b"full"),
            "capacity is exact, not the slot count"
        );
        assert_eq!(queue.len(), 3);
        assert_eq!(queue.pop(), Some((1, b"one".to_vec())));
        let mut out = [0u8; 2];
        assert_eq!(
            queue.pop_into(&mut out),
            Some((2, 4)),
            "full length reported"
        );
        assert_eq!(&out, b"tw");
        assert_eq!(queue.pop(), Some((3, Vec::new())));
        assert_eq!(queue.pop(), None);
        assert_eq!(queue.pushed(), 3);
    }

    #[test]
    fn refuses_what_does_not_fit_a_slot() {
        let queue: SlotQueue<()> = SlotQueue::new(2);
        assert!(!queue.push((), &[0; FRAME_CAPACITY + 1]));
        assert!(queue.push((), &[7; FRAME_CAPACITY]));
        assert!(!queue.is_empty());
    }

    #[test]
    fn bursts_stop_when_full_or_asked() {
        let queue: SlotQueue<u8> = SlotQueue::new(5);
        let mut next = 0u8;
        let pushed = queue.push_with(8, |slot| {
            slot[0] = next;
            next += 1;
            Some((next, 1))
        });
        assert_eq!(pushed, 5);
        assert_eq!(queue.push_with(8, |_| Some((0, 0))), 0);
        let mut seen = Vec::new();
        let popped = queue.pop_with(8, |tag, bytes| {
            if tag == 4 {
                return false;
            }
            seen.push(bytes[0]);
            true
        });
        assert_eq!((popped, seen), (3, vec![0, 1, 2]));
        assert_eq!(queue.len(), 2, "the refused entry stays");
        assert_eq!(queue.push_with(1, |_| None), 0);
    }

    #[test]
    fn one_producer_and_one_consumer_on_two_threads_lose_nothing() {
        const FRAMES: u32 = 20_000;
        let queue: Arc<SlotQueue<u32>> = Arc::new(SlotQueue::new(100));
        let producer = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                let mut sent = 0u32;
                while sent < FRAMES {
                    queue.push_with(7, |slot| {
                        if sent >= FRAMES {
                            return None;
                        }
                        let len = (sent % 40) as usize;
                        slot[..len].fill(sent as u8);
                        let tag = sent;
                        sent += 1;
                        Some((tag, len))
                    });
                }
            })
        };
        let mut expected = 0u32;
        while expected < FRAMES {
            let popped = queue.pop_with(5, |tag, bytes| {
                assert_eq!(tag, expected);
                assert_eq!(bytes.len(), (expected % 40) as usize);
                assert!(bytes.iter().all(|&b| b == expected as u8));
                expected += 1;
                true
            });
            if popped == 0 {
                thread::yield_now();
            }
        }
        producer.join().unwrap();
        assert!(queue.is_empty());
    }
}
