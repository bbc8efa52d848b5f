//! The channel's attach, receive and send paths over an arbitrary region image: whatever the
//! bytes, attaching gives a typed error or a channel, and receiving (and arming a wait) and
//! sending never panic, never read outside the region and always return (no call loops without
//! bound, docs/pcie-channel.md §5.4).
//!
//! Input: a mode byte, then the image. Mode bit 0: the image covers the header too (else the
//! rings from the control blocks on); bit 1: attach as the host (else as the NIC); bit 2: the
//! last `MOVE_BYTES` bytes are not image but index moves the peer makes between rounds, one
//! signed step per round and engine for each index this side reads (its inbound producer
//! indices, its outbound consumer indices): indices that go backwards or jump between two
//! reads, which a fixed image cannot show.
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use libfuzzer_sys::fuzz_target;
use pcie_channel::layout::{CONSUMER_LINE, CONTROL_OFFSET};
use pcie_channel::message::MessageHeader;
use pcie_channel::{Channel, EngineSet, Geometry, HeapRegion, Role};

const GEOMETRY: Geometry = Geometry {
    engines: 3,
    ring_entries: 8,
    slot_bytes: 64,
    lanes: 4,
};

const ROUNDS: usize = 4;
const ENGINES: usize = GEOMETRY.engines as usize;
/// Per round and engine: a step of the inbound producer index, one of the outbound consumer
/// index.
const MOVE_BYTES: usize = ROUNDS * ENGINES * 2;

/// The peer's index moves between rounds (mode bit 2), stored into the region as another
/// process would.
struct Moves<'a> {
    steps: &'a [u8],
    base: *mut u8,
}

impl Moves<'_> {
    fn apply(&self, channel: &Channel, round: usize) {
        let Some(steps) = self.steps.chunks_exact(ENGINES * 2).nth(round) else {
            return;
        };
        let layout = channel.layout();
        for engine in 0..ENGINES {
            let producer = layout.control(channel.inbound(), engine);
            let consumer = layout.control(channel.outbound(), engine) + CONSUMER_LINE;
            for (offset, step) in [
                (producer, steps[2 * engine]),
                (consumer, steps[2 * engine + 1]),
            ] {
                // SAFETY: `offset` is an index word of the region (4-aligned, inside it), and
                // the channel accesses that word only atomically too.
                let word = unsafe { &*self.base.add(offset).cast::<AtomicU32>() };
                let value = u32::from_le(word.load(Ordering::Relaxed));
                let moved = value.wrapping_add(step as i8 as i32 as u32);
                word.store(moved.to_le(), Ordering::Release);
            }
        }
    }
}

/// Delivers what the image holds by every receive path, a few rounds, and sends a little by
/// both send paths so credits are read too; the peer's index moves come before each round.
fn exercise(channel: &Channel, moves: &Moves<'_>) {
    let Ok(mut rx) = channel.receiver() else {
        return;
    };
    let mut tx = channel
        .sender(EngineSet::first(channel.geometry().engines as usize))
        .ok();
    let mut buf = [0u8; 1024];
    for round in 0..ROUNDS {
        moves.apply(channel, round);
        let _ = rx.poll(16, |m| {
            let mut copy = [0u8; 8192];
            let n = m.copy_to(&mut copy).unwrap_or(0);
            let _ = MessageHeader::parse(&copy[..n]);
            let _ = m.segments().map(|s| s.len()).sum::<usize>();
        });
        let _ = rx.recv_into(&mut buf);
        if let Ok(Some(received)) = rx.recv() {
            let _ = received
                .message()
                .segments()
                .map(|s| s.len())
                .sum::<usize>();
        }
        // What a receiver about to sleep does (docs/pcie-channel.md §4.4), minus the sleep.
        if let Ok(false) = rx.pending() {
            let _ = rx.arm_wait();
            rx.disarm_wait();
        }
        if let Some(tx) = tx.as_mut() {
            let _ = tx.send(7, &buf[..200]);
            let _ = tx.send_with(3, |i, slot| {
                slot[..8].copy_from_slice(&buf[i * 8..i * 8 + 8]);
                Some((i as u32, 8))
            });
        }
    }
    let _ = channel.read_boot_config(&mut buf);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, image)) = data.split_first() else {
        return;
    };
    let (image, steps) = match mode & 4 {
        0 => (image, &[][..]),
        _ => image.split_at(image.len().saturating_sub(MOVE_BYTES)),
    };
    let region = HeapRegion::new(GEOMETRY.region_bytes());
    // SAFETY: the heap region is valid, page-aligned and outlives every channel below; only
    // those channels, the raw copy here and the atomic index stores of `Moves` touch it.
    unsafe {
        let Ok(host) = Channel::create_raw(region.as_mut_ptr(), region.len(), GEOMETRY) else {
            return;
        };
        drop(host);
        let start = if mode & 1 == 0 { 0 } else { CONTROL_OFFSET };
        let n = image.len().min(region.len() - start);
        core::ptr::copy_nonoverlapping(image.as_ptr(), region.as_mut_ptr().add(start), n);
        let role = if mode & 2 == 0 { Role::Nic } else { Role::Host };
        if let Ok(channel) = Channel::attach_raw(region.as_mut_ptr(), region.len(), role) {
            let moves = Moves {
                steps,
                base: region.as_mut_ptr(),
            };
            exercise(&channel, &moves);
        }
    }
});
