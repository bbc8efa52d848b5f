//! A hostile peer: while the honest host keeps sending and receiving (by every path: copied and
//! in place, polled, borrowed and copied out), the "NIC" scribbles random words over
//! descriptors, slots and finally indices. The honest side must never panic or touch
//! memory outside the region; it counts what it refused and, once an index is out of its
//! window, stops with `Failed`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use common::{drain, RawPeer, SMALL};
use pcie_channel::descriptor::Descriptor;
use pcie_channel::layout::{Layout, CONTROL_OFFSET};
use pcie_channel::{ChannelError, Direction, EngineSet, Geometry, Loopback, SideState};

const GEOMETRY: Geometry = Geometry {
    engines: 4,
    ring_entries: 16,
    slot_bytes: 128,
    lanes: 8,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The region seen as 32-bit words the attacker stores into (as another process would).
struct Attacker<'a> {
    words: &'a [AtomicU32],
    layout: Layout,
    rng: Rng,
}

impl Attacker<'_> {
    fn word(&self, offset: usize) -> &AtomicU32 {
        &self.words[offset / 4]
    }

    /// A random word somewhere in the descriptors of either direction, or in the slots.
    fn scribble_descriptor_or_slot(&mut self) {
        let span = self.layout.total - self.layout.descriptors;
        let offset = self.layout.descriptors + self.rng.below(span as u64) as usize / 4 * 4;
        let value = match self.rng.below(4) {
            0 => self.rng.next() as u32,
            1 => self.rng.below(4) as u32,
            // A plausible length/segment word: small length, segment numbering near valid.
            2 => (self.rng.below(200) as u32) | (self.rng.below(3) as u32) << 16 | 1 << 24,
            _ => 0,
        };
        self.word(offset).store(value, Ordering::Relaxed);
    }

    /// Publishes entries on a to-host ring, as a producer that keeps its index in the window
    /// (so the honest receiver has to parse whatever descriptors are there).
    fn publish_garbage(&mut self) {
        let engine = self.rng.below(u64::from(GEOMETRY.engines)) as usize;
        let control = self.layout.control(Direction::ToHost, engine);
        let consumer = self.word(control + 64).load(Ordering::Acquire);
        let producer = self.word(control).load(Ordering::Relaxed);
        let in_flight = producer.wrapping_sub(consumer);
        if in_flight < GEOMETRY.ring_entries {
            let more = 1 + self.rng.below(u64::from(GEOMETRY.ring_entries - in_flight)) as u32;
            for position in producer..producer.wrapping_add(more) {
                if self.rng.below(2) == 0 {
                    self.plausible_descriptor(engine, position);
                }
            }
            self.word(control)
                .store(producer.wrapping_add(more), Ordering::Release);
        }
    }

    /// A well-formed one-segment descriptor with a small random sequence number, so some get
    /// delivered and the delivery paths run too.
    fn plausible_descriptor(&mut self, engine: usize, position: u32) {
        let entry = self.layout.descriptor_array(Direction::ToHost, engine)
            + (position % GEOMETRY.ring_entries) as usize * 16;
        let words = [
            self.rng.below(16) as u32,
            self.rng.below(4) as u32,
            self.rng.below(129) as u32 | 1 << 24,
            0,
        ];
        for (i, word) in words.into_iter().enumerate() {
            self.word(entry + 4 * i).store(word, Ordering::Relaxed);
        }
    }

    /// A random word over the control blocks: indices of both directions.
    fn scribble_index(&mut self) {
        let offset =
            CONTROL_OFFSET + self.rng.below(2 * u64::from(GEOMETRY.engines) * 2) as usize * 64;
        let value = self.rng.next() as u32;
        self.word(offset).store(value, Ordering::Relaxed);
    }
}

/// The honest host: sends and receives until `stop`, checking every result is a typed outcome.
fn honest_host(
    lo: &Loopback,
    stop: &AtomicBool,
    rounds: &AtomicU64,
) -> (u64, pcie_channel::ReceiveStats) {
    let mut tx = lo.host().sender(EngineSet::first(4)).unwrap();
    let mut rx = lo.host().receiver().unwrap();
    let mut rng = Rng(0x1234_5678);
    let mut body = [0u8; 700];
    let mut bytes_seen = 0u64;
    while !stop.load(Ordering::Relaxed) {
        rounds.fetch_add(1, Ordering::Relaxed);
        let len = rng.below(body.len() as u64) as usize;
        body[..len].fill(len as u8);
        let flow = rng.next() as u32;
        let sent = if len <= 128 && rng.below(2) == 0 {
            // In place, a small batch (the slots are 128 bytes).
            tx.send_with(1 + len % 4, |_, slot| {
                slot[..len].copy_from_slice(&body[..len]);
                Some((flow, len))
            })
            .map(drop)
        } else {
            tx.send(flow, &body[..len])
        };
        match sent {
            Ok(()) | Err(ChannelError::WouldBlock) | Err(ChannelError::Failed(_)) => {}
            Err(other) => panic!("unexpected send error {other}"),
        }
        match rx.recv() {
            Ok(Some(received)) => {
                let message = received.message();
                bytes_seen += message
                    .segments()
                    .flatten()
                    .map(|&b| u64::from(b))
                    .sum::<u64>();
            }
            Ok(None) | Err(ChannelError::Failed(_)) => {}
            Err(other) => panic!("unexpected receive error {other}"),
        }
        let polled = rx.poll(8, |m| {
            // Whatever arrives is in bounds: read every byte.
            for segment in m.segments() {
                bytes_seen += segment.iter().map(|&b| u64::from(b)).sum::<u64>();
            }
            let mut copy = vec![0u8; m.len()];
            assert_eq!(m.copy_to(&mut copy), Ok(m.len()));
        });
        match polled {
            Ok(_) | Err(ChannelError::Failed(_)) => {}
            Err(other) => panic!("unexpected receive error {other}"),
        }
        let mut small = [0u8; 4];
        match rx.recv_into(&mut small) {
            Ok(_) | Err(ChannelError::BufferTooSmall { .. }) | Err(ChannelError::Failed(_)) => {}
            Err(other) => panic!("unexpected receive error {other}"),
        }
    }
    (bytes_seen, rx.stats())
}

fn attack(lo: &Loopback, rounds: u32, indices: bool) -> (u64, pcie_channel::ReceiveStats) {
    // SAFETY: the loopback's region is `len` bytes, page-aligned, alive for this function;
    // viewing it as atomics is how a second process sees it, and every other access to it is
    // atomic or a raw copy.
    let words = unsafe { std::slice::from_raw_parts(lo.base().cast::<AtomicU32>(), lo.len() / 4) };
    let stop = AtomicBool::new(false);
    let honest_rounds = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let host = scope.spawn(|| honest_host(lo, &stop, &honest_rounds));
        let mut attacker = Attacker {
            words,
            layout: *lo.host().layout(),
            rng: Rng(0x9E37_79B9_7F4A_7C15),
        };
        let mut round = 0u32;
        // Both sides must really have run side by side, however the scheduler treats them.
        while round < rounds || honest_rounds.load(Ordering::Relaxed) < 5_000 {
            round = round.wrapping_add(1);
            for _ in 0..8 {
                attacker.scribble_descriptor_or_slot();
            }
            attacker.publish_garbage();
            if indices && round > rounds / 2 && round % 64 == 63 {
                attacker.scribble_index();
            }
            if round.is_multiple_of(1024) {
                std::thread::yield_now();
            }
        }
        stop.store(true, Ordering::Relaxed);
        host.join().expect("the honest side never panics")
    })
}

#[test]
fn garbage_descriptors_are_counted_and_skipped_without_failing() {
    let lo = Loopback::new(GEOMETRY).unwrap();
    let (_, stats) = attack(&lo, 50_000, false);
    assert!(stats.corrupt > 0, "{stats:?}");
    assert_eq!(lo.host().failure(), None, "indices stayed in their windows");
    eprintln!("descriptor attack: {stats:?}");
}

#[test]
fn garbage_indices_fail_the_channel_cleanly() {
    let lo = Loopback::new(GEOMETRY).unwrap();
    let (_, stats) = attack(&lo, 50_000, true);
    let failure = lo
        .host()
        .failure()
        .expect("an out-of-window index stops the channel");
    eprintln!("index attack: {failure}; {stats:?}");
    assert_eq!(lo.nic().peer_state(), SideState::Failed);
    let mut tx = lo.host().sender(EngineSet::single(0)).unwrap();
    assert!(matches!(tx.send(1, b"x"), Err(ChannelError::Failed(_))));
}

/// A message of two segments on one ring: the peer rewrites its second descriptor while the
/// message is lent (between the receive that gathered it and the release). The receiver decided
/// on what it read and must release each entry once: before the fix, releasing the head moved
/// the ring's front over the rewritten segment as an orphan and releasing the segment then
/// marked the entry a ring later, so a later message there was skipped without being counted.
#[test]
fn a_descriptor_rewritten_while_its_message_is_lent_is_released_once() {
    let lo = Loopback::new(SMALL).unwrap();
    let peer = RawPeer::new(&lo);
    let mut early = lo.host().sender(EngineSet::single(1)).unwrap();
    let mut late = lo.host().sender(EngineSet::single(0)).unwrap();
    let mut rx = lo.nic().receiver().unwrap();
    let (a, b, c) = (1, 2, 3);
    // Lane a: message 0 waits unpublished on engine 1; message 1 (two segments) sits at
    // entries 0 and 1 of engine 0, followed by a message of lane b at entry 2.
    early.queue(a, b"a0").unwrap();
    let big = vec![0xabu8; 300];
    late.send(a, &big).unwrap();
    late.send(b, b"b0").unwrap();
    // b0 is delivered past the parked head: entry 2 is released out of order.
    assert_eq!(drain(&mut rx), vec![(b, b"b0".to_vec())]);
    early.publish();
    assert_eq!(drain(&mut rx), vec![(a, b"a0".to_vec()), (a, big.clone())]);
    // Once more, now with the rewrite while the two-segment message is lent.
    early.queue(a, b"a2").unwrap();
    late.send(a, &big).unwrap();
    late.send(b, b"b1").unwrap();
    assert_eq!(drain(&mut rx), vec![(b, b"b1".to_vec())]);
    early.publish();
    let received = rx.recv().unwrap().expect("a2");
    assert_eq!(received.message().as_contiguous(), Some(&b"a2"[..]));
    drop(received);
    let received = rx.recv().unwrap().expect("the two-segment message");
    assert_eq!(received.message().len(), 300);
    // The peer turns the second segment (entry 4 of engine 0) into an orphan of lane a.
    let mut second = peer.read_descriptor(Direction::ToNic, 0, 4);
    assert_eq!(
        (second.segment, second.seq),
        (1, 3),
        "the entry the test means"
    );
    second.seq = 0;
    peer.write_descriptor(Direction::ToNic, 0, 4, second);
    drop(received);
    // Every later message on that ring arrives, none skipped unseen.
    let mut expected = Vec::new();
    for i in 0..8u8 {
        late.send(c, &[i]).unwrap();
        expected.push((c, vec![i]));
    }
    assert_eq!(drain(&mut rx), expected);
    let stats = rx.stats();
    assert_eq!(stats.messages, 6 + 8, "{stats:?}");
    assert_eq!(
        stats.refused(),
        0,
        "the rewrite came after the decision: {stats:?}"
    );
    assert_eq!(
        peer.consumer(Direction::ToNic, 0),
        6 + 8,
        "every entry released"
    );
}

/// A chain must move forward on each engine (an honest sender claims a message's entries in
/// order): a link back to an earlier entry of the same engine, which is how a chain could name
/// one entry twice, is refused as corrupt and the message skipped.
#[test]
fn a_chain_that_links_back_on_its_engine_is_refused() {
    let lo = Loopback::new(SMALL).unwrap();
    let peer = RawPeer::new(&lo);
    let mut rx = lo.host().receiver().unwrap();
    let segment = |segment: u8, len: u16, next_slot: u16| Descriptor {
        flow: 5,
        seq: 0,
        len,
        segment,
        segments: 3,
        next_slot,
        next_engine: 0,
        reserved: 0,
    };
    // Head at entry 1 -> entry 0 -> entry 2: three distinct entries, but the first link goes
    // back.
    peer.write_descriptor(Direction::ToHost, 0, 0, segment(1, 256, 2));
    peer.write_descriptor(Direction::ToHost, 0, 1, segment(0, 256, 0));
    peer.write_descriptor(Direction::ToHost, 0, 2, segment(2, 10, 0));
    peer.set_producer(Direction::ToHost, 0, 3);
    assert_eq!(drain(&mut rx), vec![]);
    // Entry 0 was visited (a segment waiting for its head) before the head was refused: the
    // next call visits the unreleased entries again and releases it as an orphan.
    assert_eq!(drain(&mut rx), vec![]);
    let stats = rx.stats();
    assert_eq!(
        (stats.corrupt, stats.skipped, stats.orphans),
        (1, 1, 2),
        "{stats:?}"
    );
    assert_eq!(peer.consumer(Direction::ToHost, 0), 3, "all three released");
    // The lane went on: its next message is delivered.
    peer.write_descriptor(Direction::ToHost, 0, 3, Descriptor::whole(5, 1, 2));
    peer.set_producer(Direction::ToHost, 0, 4);
    assert_eq!(drain(&mut rx), vec![(5, vec![0, 0])]);
}
