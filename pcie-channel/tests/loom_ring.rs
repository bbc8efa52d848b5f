//! Loom model of one engine ring's index protocol: the crate's own `ProducerIndex` and
//! `ConsumerIndex` over loom atomics, with slots as loom cells so that loom reports any slot
//! access the Acquire/Release pairs (P1/C1, C2/P2) fail to order. Three messages through a
//! two-entry ring cover publication, wrap-around and slot reuse.
//!
//! Run by `cargo xtask ci` (step "loom"), or by hand:
//! `RUSTFLAGS="--cfg loom" cargo test -p pcie-channel --release --test loom_ring`
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::AtomicU32;
use loom::sync::Arc;
use pcie_channel::ring::{ConsumerIndex, ProducerIndex};

const ENTRIES: u32 = 2;
const MESSAGES: u32 = 3;

struct Ring {
    producer: AtomicU32,
    consumer: AtomicU32,
    slots: [UnsafeCell<u32>; ENTRIES as usize],
}

#[test]
fn one_ring_hands_every_slot_over_in_order_without_races() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(|| {
        let ring = Arc::new(Ring {
            producer: AtomicU32::new(0),
            consumer: AtomicU32::new(0),
            slots: [UnsafeCell::new(0), UnsafeCell::new(0)],
        });
        let producer = {
            let ring = ring.clone();
            loom::thread::spawn(move || {
                let mut tx =
                    ProducerIndex::new(&ring.producer, &ring.consumer, ENTRIES, 0).unwrap();
                let mut sent = 0;
                while sent < MESSAGES {
                    if tx.credits(1).unwrap() == 0 {
                        loom::thread::yield_now();
                        continue;
                    }
                    let position = tx.claim().unwrap();
                    // Written before P1 publishes it, after P2 saw the consumer release it.
                    ring.slots[(position % ENTRIES) as usize].with_mut(|slot| {
                        // SAFETY: the claimed position's slot belongs to the producer alone
                        // (loom checks exactly this).
                        unsafe { *slot = 100 + sent }
                    });
                    tx.publish();
                    sent += 1;
                }
            })
        };
        let mut rx = ConsumerIndex::new(&ring.producer, &ring.consumer, ENTRIES, 0);
        let mut received = 0;
        while received < MESSAGES {
            let head = rx.available().unwrap();
            if head == rx.tail() {
                loom::thread::yield_now();
                continue;
            }
            let position = rx.tail();
            let value = ring.slots[(position % ENTRIES) as usize].with(|slot| {
                // SAFETY: a published, unreleased position's slot is read-only for both sides.
                unsafe { *slot }
            });
            assert_eq!(value, 100 + received, "in order, fully written");
            rx.release_to(position.wrapping_add(1));
            rx.publish();
            received += 1;
        }
        producer.join().unwrap();
    });
}
