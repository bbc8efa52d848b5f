//! What bounds the figures on this machine, measured in the same run: the same bytes handed
//! from one thread to the other through a bare ring (no descriptors, no sequence numbers, no
//! checks: only the copy in, the read in place and one index each way), and one cache line
//! bounced between two spinning threads (the least a round trip between two cores costs).
//!
//! These are references, not baselines: the targets stay the ratios to `memcpy` and to the
//! crossbeam queue. They say how much of a gap is the channel's and how much the machine's.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::{geometry, spin, BATCH};

/// An index on its own cache line.
#[repr(align(64))]
struct Index(AtomicUsize);

/// Seconds to hand `count` messages of `size` bytes from one thread to another through a bare
/// ring of the channel's footprint and slot size: the producer copies each slot-sized chunk in
/// and publishes as often as the channel does (after a batch, or a quarter of one engine's
/// ring), the consumer reads every byte in place (as the in-place path does) and returns the
/// chunks as often.
pub fn handoff(size: usize, count: usize) -> Duration {
    let g = geometry(size);
    let chunk = (g.slot_bytes as usize).min(size);
    let slots = (g.engines * g.ring_entries) as usize;
    let per_message = size.div_ceil(chunk);
    // The channel publishes after each batch, and within a batch every quarter ring of one
    // engine; credits come back as often.
    let every = (BATCH * per_message)
        .min(g.ring_entries as usize / 4)
        .max(1);
    let chunks = count * per_message;
    let mut ring = vec![0u8; slots * chunk];
    let base = ring.as_mut_ptr() as usize;
    let (head, tail) = (Index(AtomicUsize::new(0)), Index(AtomicUsize::new(0)));
    let source = vec![0x5au8; size];
    std::thread::scope(|scope| {
        let (head, tail) = (&head, &tail);
        let consumer = scope.spawn(move || {
            let (mut taken, mut step, mut acc) = (0, 0, 0u64);
            while taken < chunks {
                let published = head.0.load(Ordering::Acquire);
                if published == taken {
                    spin(&mut step);
                    continue;
                }
                while taken != published {
                    let at = base + (taken % slots) * chunk;
                    // SAFETY: chunk `taken` lies in `ring` (kept alive by the caller's scope),
                    // was written before the Release store of `head` seen above, and is not
                    // written again before `tail` passes it.
                    let bytes = unsafe { std::slice::from_raw_parts(at as *const u8, chunk) };
                    let (words, _) = bytes.as_chunks::<8>();
                    acc = words.iter().fold(acc, |a, w| a ^ u64::from_ne_bytes(*w));
                    taken += 1;
                    if taken % every == 0 || taken == published {
                        tail.0.store(taken, Ordering::Release);
                    }
                }
            }
            black_box(acc);
            Instant::now()
        });
        let started = Instant::now();
        let (mut put, mut free_to, mut step) = (0, slots, 0);
        while put < chunks {
            if put == free_to {
                free_to = tail.0.load(Ordering::Acquire) + slots;
                if put == free_to {
                    spin(&mut step);
                    continue;
                }
            }
            let from = (put % per_message) * chunk;
            let at = base + (put % slots) * chunk;
            let piece = &source[from..(from + chunk).min(size)];
            // SAFETY: chunk `put` lies in `ring`; the consumer has returned it (`tail` read with
            // Acquire above) and reads it only after the Release store of `head` below.
            unsafe { std::ptr::copy_nonoverlapping(piece.as_ptr(), at as *mut u8, piece.len()) };
            put += 1;
            if put % every == 0 || put == chunks {
                head.0.store(put, Ordering::Release);
            }
        }
        consumer.join().unwrap() - started
    })
}

/// Round trips of one cache line between two spinning threads (a counter written by one and
/// echoed by the other); returns sorted nanoseconds.
pub fn line_round_trip(count: usize) -> Vec<u64> {
    let (there, back) = (Index(AtomicUsize::new(0)), Index(AtomicUsize::new(0)));
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut last = 0;
            while !done.load(Ordering::Relaxed) {
                let value = there.0.load(Ordering::Acquire);
                if value != last {
                    last = value;
                    back.0.store(value, Ordering::Release);
                }
                std::hint::spin_loop();
            }
        });
        let mut samples = Vec::with_capacity(count);
        for i in 1..=count {
            let started = Instant::now();
            there.0.store(i, Ordering::Release);
            while back.0.load(Ordering::Acquire) != i {
                std::hint::spin_loop();
            }
            samples.push(started.elapsed().as_nanos() as u64);
        }
        done.store(true, Ordering::Relaxed);
        samples
    })
}
