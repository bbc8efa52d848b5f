//! A hostile peer. While the honest host keeps sending and receiving (by every path: copied and
//! in place, polled, borrowed and copied out), the "NIC" scribbles random words over
//! descriptors, slots and finally indices, from another thread; and, in a deterministic
//! interleaving driven by one seed, over the header, both liveness lines and the boot
//! configuration too. The honest side must never panic or touch memory outside the region; it
//! counts what it refused, answers every bad header with the attach error a reference check
//! predicts, turns a bad liveness line into `Disconnected` exactly when the specification says,
//! and, once an index is out of its window, stops with `Failed`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::{crc32, drain, RawPeer, SMALL};
use pcie_channel::descriptor::Descriptor;
use pcie_channel::header::{field, MAGIC, VERSION};
use pcie_channel::layout::{CONTROL_OFFSET, HEADER_BYTES};
use pcie_channel::ring::RingError;
use pcie_channel::{
    AttachError, BootConfigError, Channel, ChannelError, Direction, EngineSet, Failure, Geometry,
    HeapRegion, Loopback, PeerStatus, PeerWatch, ReceiveStats, Role, SendStats, SideState,
};

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

/// The NIC side as an attacker: stores into the region's words as another process would.
struct Attacker<'a> {
    peer: RawPeer<'a>,
    rng: Rng,
    /// The next sequence number of each lane, as an honest NIC would stamp it.
    lanes: [u32; GEOMETRY.lanes as usize],
}

impl<'a> Attacker<'a> {
    fn new(lo: &'a Loopback, seed: u64) -> Attacker<'a> {
        Attacker {
            peer: RawPeer::new(lo),
            rng: Rng(seed),
            lanes: [0; GEOMETRY.lanes as usize],
        }
    }
}

impl Attacker<'_> {
    /// A random word somewhere in the descriptors of either direction, or in the slots.
    fn scribble_descriptor_or_slot(&mut self) {
        let layout = self.peer.layout;
        let span = layout.total - layout.descriptors;
        let offset = layout.descriptors + self.rng.below(span as u64) as usize / 4 * 4;
        let value = match self.rng.below(4) {
            0 => self.rng.next() as u32,
            1 => self.rng.below(4) as u32,
            // A plausible length/segment word: small length, segment numbering near valid.
            2 => (self.rng.below(200) as u32) | (self.rng.below(3) as u32) << 16 | 1 << 24,
            _ => 0,
        };
        self.peer.store(offset, value);
    }

    /// Publishes entries on a to-host ring, as a producer that keeps its index in the window
    /// (so the honest receiver has to parse whatever descriptors are there).
    fn publish_garbage(&mut self) {
        let engine = self.rng.below(u64::from(GEOMETRY.engines)) as usize;
        let control = self.peer.layout.control(Direction::ToHost, engine);
        let consumer = self.peer.consumer(Direction::ToHost, engine);
        let producer = self.peer.load(control);
        let in_flight = producer.wrapping_sub(consumer);
        if in_flight < GEOMETRY.ring_entries {
            let more = 1 + self.rng.below(u64::from(GEOMETRY.ring_entries - in_flight)) as u32;
            for position in producer..producer.wrapping_add(more) {
                if self.rng.below(2) == 0 {
                    self.plausible_descriptor(engine, position);
                }
            }
            self.peer.store(control, producer.wrapping_add(more));
        }
    }

    /// A well-formed one-segment descriptor, usually with its lane's next sequence number (so
    /// that the delivery paths run too), else a small random one.
    fn plausible_descriptor(&mut self, engine: usize, position: u32) {
        let flow = self.rng.below(16) as u32;
        let lane = &mut self.lanes[(flow % GEOMETRY.lanes) as usize];
        let seq = if self.rng.below(4) != 0 {
            *lane = lane.wrapping_add(1);
            lane.wrapping_sub(1)
        } else {
            self.rng.below(4) as u32
        };
        let descriptor = Descriptor::whole(flow, seq, self.rng.below(129) as u16);
        self.peer
            .write_descriptor(Direction::ToHost, engine, position, descriptor);
    }

    /// A random word over the control blocks: indices of both directions.
    fn scribble_index(&mut self) {
        let offset =
            CONTROL_OFFSET + self.rng.below(2 * u64::from(GEOMETRY.engines) * 2) as usize * 64;
        let value = self.rng.next() as u32;
        self.peer.store(offset, value);
    }

    /// Consumes everything the host published on a to-NIC ring (so the host keeps getting
    /// credit), keeping the consumer index in its window.
    fn release_to_nic(&mut self) {
        let engine = self.rng.below(u64::from(GEOMETRY.engines)) as usize;
        let control = self.peer.layout.control(Direction::ToNic, engine);
        let producer = self.peer.load(control);
        self.peer.store(control + 64, producer);
    }

    /// A random word of the header page, the host's liveness line included; often a field,
    /// and then often with the checksum recomputed (a host that wrote a header of its own).
    fn scribble_header(&mut self) {
        let offset = match self.rng.below(3) {
            0 => self.rng.below(HEADER_BYTES as u64 / 4) as usize * 4,
            _ => self.rng.below(0x40 / 4) as usize * 4,
        };
        let old = self.peer.load(offset);
        let value = match self.rng.below(3) {
            0 => old ^ 1 << self.rng.below(32),
            1 => self.rng.below(5) as u32,
            _ => self.rng.next() as u32,
        };
        if (field::VERSION..field::CHECKSUM).contains(&offset) && self.rng.below(2) == 0 {
            self.peer.rewrite_header(offset, value);
        } else {
            self.peer.store(offset, value);
        }
    }

    /// The NIC's liveness line: its state word (often a valid state) and its heartbeat (often
    /// moved on, sometimes left, sometimes garbage).
    fn scribble_liveness(&mut self) {
        let state = match self.rng.below(16) {
            0 => 0,
            1 => 2,
            2 => 3,
            3 => self.rng.next() as u32,
            _ => 1,
        };
        self.peer.store(field::NIC_LINE + field::STATE, state);
        let beat = field::NIC_LINE + field::HEARTBEAT;
        match self.rng.below(4) {
            0 => {}
            1 => self.peer.store(beat, self.rng.next() as u32),
            _ => self.peer.store(beat, self.peer.load(beat).wrapping_add(1)),
        }
    }

    /// A random word of the boot configuration area (its framing or its bytes).
    fn scribble_boot_config(&mut self) {
        // Often the framing words (magic, length, checksum, generation), else the bytes too.
        let words = if self.rng.below(2) == 0 { 4 } else { 64 };
        let offset = 0x1000 + self.rng.below(words) as usize * 4;
        let value = match self.rng.below(3) {
            0 => self.rng.below(0x3000) as u32,
            1 => u32::from_le_bytes(*b"BOOT"),
            _ => self.rng.next() as u32,
        };
        self.peer.store(offset, value);
    }
}

/// The honest host: sends and receives until `stop`, checking every result is a typed outcome.
fn honest_host(lo: &Loopback, stop: &AtomicBool, rounds: &AtomicU64) -> ReceiveStats {
    let mut tx = lo.host().sender(EngineSet::first(4)).unwrap();
    let mut rx = lo.host().receiver().unwrap();
    let mut rng = Rng(0x1234_5678);
    while !stop.load(Ordering::Relaxed) {
        rounds.fetch_add(1, Ordering::Relaxed);
        match honest_send(&mut tx, &mut rng) {
            Ok(()) | Err(ChannelError::WouldBlock) | Err(ChannelError::Failed(_)) => {}
            Err(other) => panic!("unexpected send error {other}"),
        }
        match honest_receive(&mut rx, &mut rng) {
            Ok(()) | Err(ChannelError::Failed(_)) => {}
            Err(other) => panic!("unexpected receive error {other}"),
        }
    }
    rx.stats()
}

/// One send by a path the seed picks: copied, in place batched, or reserved and committed.
fn honest_send(tx: &mut pcie_channel::Sender<'_>, rng: &mut Rng) -> Result<(), ChannelError> {
    let mut body = [0u8; 700];
    let len = rng.below(body.len() as u64) as usize;
    body[..len].fill(len as u8);
    let flow = rng.next() as u32;
    match rng.below(3) {
        // In place, a small batch (the slots are 128 bytes).
        0 if len <= 128 => tx
            .send_with(1 + len % 4, |_, slot| {
                slot[..len].copy_from_slice(&body[..len]);
                Some((flow, len))
            })
            .map(drop),
        1 if len <= 128 => {
            let mut reservation = tx.reserve(flow, len)?;
            reservation.buffer().copy_from_slice(&body[..len]);
            reservation.commit(len)
        }
        _ => tx.send(flow, &body[..len]),
    }
}

/// One receive by every path: borrowed, polled (reading every byte and copying it out), copied
/// out into a small buffer. Returns the first error that is not a small buffer.
fn honest_receive(rx: &mut pcie_channel::Receiver<'_>, rng: &mut Rng) -> Result<(), ChannelError> {
    let mut bytes_seen = 0u64;
    if let Some(received) = rx.recv()? {
        let message = received.message();
        bytes_seen += message
            .segments()
            .flatten()
            .map(|&b| u64::from(b))
            .sum::<u64>();
    }
    rx.poll(1 + rng.below(8) as usize, |m| {
        // Whatever arrives is in bounds: read every byte.
        for segment in m.segments() {
            bytes_seen += segment.iter().map(|&b| u64::from(b)).sum::<u64>();
        }
        let mut copy = vec![0u8; m.len()];
        assert_eq!(m.copy_to(&mut copy), Ok(m.len()));
    })?;
    let mut small = [0u8; 4];
    match rx.recv_into(&mut small) {
        Ok(_) | Err(ChannelError::BufferTooSmall { .. }) => {}
        Err(other) => return Err(other),
    }
    std::hint::black_box(bytes_seen);
    Ok(())
}

fn attack(lo: &Loopback, rounds: u32, indices: bool) -> ReceiveStats {
    let stop = AtomicBool::new(false);
    let honest_rounds = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let host = scope.spawn(|| honest_host(lo, &stop, &honest_rounds));
        let mut attacker = Attacker::new(lo, 0x9E37_79B9_7F4A_7C15);
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
    let stats = attack(&lo, 50_000, false);
    assert!(stats.corrupt > 0, "{stats:?}");
    assert_eq!(lo.host().failure(), None, "indices stayed in their windows");
    eprintln!("descriptor attack: {stats:?}");
}

#[test]
fn garbage_indices_fail_the_channel_cleanly() {
    let lo = Loopback::new(GEOMETRY).unwrap();
    let stats = attack(&lo, 50_000, true);
    let failure = lo
        .host()
        .failure()
        .expect("an out-of-window index stops the channel");
    eprintln!("index attack: {failure}; {stats:?}");
    assert_eq!(lo.nic().peer_state(), SideState::Failed);
    let mut tx = lo.host().sender(EngineSet::single(0)).unwrap();
    assert!(matches!(tx.send(1, b"x"), Err(ChannelError::Failed(_))));
}

/// What attaching to a region with this header must answer (docs/pcie-channel.md §3,
/// "Attaching"), worked out from the bytes alone, independently of the crate.
fn reference_attach(header: &[u8], len: usize) -> Result<(), AttachError> {
    let u32_at = |o: usize| u32::from_le_bytes(header[o..o + 4].try_into().unwrap());
    let magic = u64::from(u32_at(0)) | u64::from(u32_at(4)) << 32;
    if magic != MAGIC {
        return Err(AttachError::Magic(magic));
    }
    if u32_at(field::VERSION) != VERSION {
        return Err(AttachError::Version(u32_at(field::VERSION)));
    }
    let computed = crc32(&header[field::VERSION..field::CHECKSUM]);
    if u32_at(field::CHECKSUM) != computed {
        return Err(AttachError::Checksum {
            stored: u32_at(field::CHECKSUM),
            computed,
        });
    }
    if u32_at(field::FEATURES) != 0 {
        return Err(AttachError::Features(u32_at(field::FEATURES)));
    }
    let geometry = Geometry {
        engines: u32_at(field::ENGINES),
        ring_entries: u32_at(field::RING_ENTRIES),
        slot_bytes: u32_at(field::SLOT_BYTES),
        lanes: u32_at(field::LANES),
    };
    geometry.validate()?;
    let layout = pcie_channel::layout::Layout::of(geometry);
    let region_bytes = u64::from(u32_at(0x20)) | u64::from(u32_at(0x24)) << 32;
    for (offset, stored, expected) in [
        (field::REGION_BYTES, region_bytes, layout.total as u64),
        (field::BOOT_CONFIG_OFFSET, u32_at(0x28).into(), 0x1000),
        (field::BOOT_CONFIG_BYTES, u32_at(0x2C).into(), 0x2000),
        (field::CONTROL_OFFSET, u32_at(0x30).into(), 0x3000),
        (
            field::DESCRIPTORS_OFFSET,
            u32_at(0x34).into(),
            layout.descriptors as u64,
        ),
        (
            field::SLOTS_OFFSET,
            u32_at(0x38).into(),
            layout.slots as u64,
        ),
    ] {
        if stored != expected {
            return Err(AttachError::Layout {
                field: offset,
                stored,
                expected,
            });
        }
    }
    if len < layout.total {
        return Err(AttachError::TooSmall {
            len,
            need: layout.total,
        });
    }
    Ok(())
}

/// Attaches to a copy of the region as it now is (attaching writes a liveness line; the copy
/// keeps the live one out of it).
fn attach_copy(peer: &RawPeer<'_>, len: usize) -> (Result<(), AttachError>, Vec<u8>) {
    let image = peer.bytes(0..len);
    let copy = HeapRegion::new(len);
    // SAFETY: `copy` is `len` bytes of our own memory, and outlives the channel made over it.
    unsafe {
        std::ptr::copy_nonoverlapping(image.as_ptr(), copy.as_mut_ptr(), len);
        let attached = Channel::attach_raw(copy.as_mut_ptr(), len, Role::Nic).map(drop);
        (attached, image[..HEADER_BYTES].to_vec())
    }
}

/// Puts `bytes` back at `offset`, word by word.
fn restore(peer: &RawPeer<'_>, offset: usize, bytes: &[u8]) {
    for (i, word) in bytes.chunks_exact(4).enumerate() {
        peer.store(offset + 4 * i, u32::from_le_bytes(word.try_into().unwrap()));
    }
}

/// What one seeded run saw; two runs of one seed must see exactly the same.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    receive: ReceiveStats,
    send: SendStats,
    /// Attach refusals by kind: magic, version, checksum, features, geometry, layout.
    refusals: [u32; 6],
    /// Rounds the peer counted as disconnected, and as down by its state word.
    disconnected: u32,
    down: u32,
    boot_config: [u32; 5],
    failure: Failure,
}

/// The whole attack in one thread, the honest host and the attacker taking turns as the seed
/// says, so that a seed replays exactly. Every outcome is checked against what the
/// specification predicts from the bytes the attacker left.
fn seeded_attack(seed: u64, rounds: u32) -> Outcome {
    const TIMEOUT: u64 = 40;
    let lo = Loopback::new(GEOMETRY).unwrap();
    let mut tx = lo.host().sender(EngineSet::first(4)).unwrap();
    let mut rx = lo.host().receiver().unwrap();
    let mut host_rng = Rng(seed ^ 0x5555);
    let mut attacker = Attacker::new(&lo, seed);
    let config = b"nic_ip=10.0.0.2 host_ip=10.0.0.1 services=7000:kvs,7001:count";
    lo.host().write_boot_config(config).unwrap();
    let mut watch = PeerWatch::new(TIMEOUT);
    // The reference watch: the heartbeat seen last and when it last moved.
    let mut last_beat: Option<(u64, u64)> = None;
    let (mut refusals, mut boot_config) = ([0u32; 6], [0u32; 5]);
    let (mut disconnected, mut down) = (0, 0);
    for now in 0..u64::from(rounds) {
        match attacker.rng.below(16) {
            0 => {
                // Each bad header on its own: the page is put back after the check.
                let saved = attacker.peer.bytes(0..HEADER_BYTES);
                attacker.scribble_header();
                let (attached, header) = attach_copy(&attacker.peer, lo.len());
                restore(&attacker.peer, 0, &saved);
                assert_eq!(attached, reference_attach(&header, lo.len()), "round {now}");
                let kind = match attached {
                    Ok(()) => None,
                    Err(AttachError::Magic(_)) => Some(0),
                    Err(AttachError::Version(_)) => Some(1),
                    Err(AttachError::Checksum { .. }) => Some(2),
                    Err(AttachError::Features(_)) => Some(3),
                    Err(AttachError::Geometry(_)) => Some(4),
                    Err(AttachError::Layout { .. }) => Some(5),
                    Err(other) => panic!("round {now}: {other}"),
                };
                if let Some(kind) = kind {
                    refusals[kind] += 1;
                }
            }
            1..=3 => attacker.scribble_liveness(),
            4 => {
                let saved = attacker.peer.bytes(0x1000..0x1100);
                attacker.scribble_boot_config();
                let mut out = [0u8; 256];
                let read = lo.host().read_boot_config(&mut out);
                restore(&attacker.peer, 0x1000, &saved);
                let kind = match read {
                    Ok(_) => 0,
                    Err(BootConfigError::Missing) => 1,
                    Err(BootConfigError::BadLength(_)) => 2,
                    Err(BootConfigError::BufferTooSmall { .. }) => 3,
                    Err(BootConfigError::Checksum { .. }) => 4,
                    Err(other) => panic!("round {now}: {other}"),
                };
                boot_config[kind] += 1;
            }
            5..=8 => attacker.release_to_nic(),
            9..=11 => attacker.publish_garbage(),
            _ => attacker.scribble_descriptor_or_slot(),
        }
        // The host watches the NIC's line as it now is.
        let heartbeat = lo.host().peer_heartbeat();
        let state = lo.host().peer_state();
        let status = lo.host().check_peer(&mut watch, now);
        let since = match last_beat {
            Some((beat, since)) if beat == heartbeat => since,
            _ => now,
        };
        last_beat = Some((heartbeat, since));
        let expected = match state {
            SideState::Ready | SideState::Absent if now - since > TIMEOUT => {
                PeerStatus::Stalled { since }
            }
            SideState::Ready | SideState::Absent => PeerStatus::Alive,
            other => PeerStatus::Down(other),
        };
        assert_eq!(status, expected, "round {now}");
        let sent = honest_send(&mut tx, &mut host_rng);
        let received = honest_receive(&mut rx, &mut host_rng);
        if status.is_alive() {
            assert!(
                matches!(sent, Ok(()) | Err(ChannelError::WouldBlock)),
                "round {now}: {sent:?}"
            );
            assert_eq!(received, Ok(()), "round {now}");
        } else {
            disconnected += 1;
            down += u32::from(matches!(status, PeerStatus::Down(_)));
            assert_eq!(sent, Err(ChannelError::Disconnected), "round {now}");
            assert_eq!(received, Err(ChannelError::Disconnected), "round {now}");
        }
    }
    // The NIC comes back to life, then pushes a to-host producer index out of its window.
    attacker.peer.store(field::NIC_LINE + field::STATE, 1);
    let beat = field::NIC_LINE + field::HEARTBEAT;
    attacker
        .peer
        .store(beat, attacker.peer.load(beat).wrapping_add(1));
    assert_eq!(
        lo.host().check_peer(&mut watch, u64::from(rounds)),
        PeerStatus::Alive
    );
    let engine = attacker.rng.below(u64::from(GEOMETRY.engines)) as usize;
    let consumer = attacker.peer.consumer(Direction::ToHost, engine);
    let producer =
        consumer.wrapping_add(GEOMETRY.ring_entries + 1 + attacker.rng.below(100) as u32);
    attacker
        .peer
        .set_producer(Direction::ToHost, engine, producer);
    let want = Failure {
        direction: Direction::ToHost,
        engine: engine as u8,
        error: RingError::ProducerIndex { producer, consumer },
    };
    let mut first_error = None;
    for _ in 0..4 {
        if let Err(error) = rx.poll(64, |_| {}) {
            first_error = Some(error);
            break;
        }
    }
    assert_eq!(first_error, Some(ChannelError::Failed(want)));
    assert_eq!(lo.host().failure(), Some(want));
    assert_eq!(
        attacker.peer.load(field::HOST_LINE + field::STATE),
        SideState::Failed.code(),
        "the host says it failed"
    );
    assert_eq!(tx.send(1, b"x"), Err(ChannelError::Failed(want)));
    let outcome = Outcome {
        receive: rx.stats(),
        send: tx.stats(),
        refusals,
        disconnected,
        down,
        boot_config,
        failure: want,
    };
    drop((tx, rx));
    outcome
}

#[test]
fn a_seeded_attack_on_every_part_of_the_region_replays_and_is_answered_as_specified() {
    for seed in [0x9E37_79B9_7F4A_7C15, 0x0123_4567_89AB_CDEF, 42] {
        let outcome = seeded_attack(seed, 20_000);
        eprintln!("seed {seed:#x}: {outcome:?}");
        let receive = outcome.receive;
        assert!(receive.messages > 0 && receive.refused() > 0, "{receive:?}");
        assert!(outcome.send.messages > 0, "{:?}", outcome.send);
        assert!(
            outcome.refusals.iter().all(|&n| n > 0),
            "every kind of bad header: {outcome:?}"
        );
        assert!(
            outcome.down > 0 && outcome.disconnected > outcome.down,
            "{outcome:?}"
        );
        assert!(outcome.boot_config[0] > 0, "{outcome:?}");
        assert!(
            outcome.boot_config[1..].iter().any(|&n| n > 0),
            "{outcome:?}"
        );
        assert_eq!(
            seeded_attack(seed, 20_000),
            outcome,
            "seed {seed:#x} replays"
        );
    }
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

/// A producer index that moves backwards, staying at or above the consumer index but below
/// where the receiver has already looked: the receiver would visit about 2^32 positions before
/// its cursor wrapped round to the index (reading stale entries past it), and `pending` would
/// say "something to do" forever, so a wait never slept. It must stop the channel instead, at
/// once, on every path that reads the index.
#[test]
fn a_producer_index_that_moves_backwards_fails_the_channel_at_once() {
    let lo = Loopback::new(SMALL).unwrap();
    let peer = RawPeer::new(&lo);
    let mut rx = lo.host().receiver().unwrap();
    // Four entries holding second segments of lane 5's next message: visited, kept (they wait
    // for their head), not released, nothing parked.
    for position in 0..4 {
        let mut segment = Descriptor::whole(5, 0, 10);
        (segment.segment, segment.segments) = (1, 2);
        peer.write_descriptor(Direction::ToHost, 0, position, segment);
    }
    peer.set_producer(Direction::ToHost, 0, 4);
    assert_eq!(drain(&mut rx), vec![]);
    assert_eq!(peer.consumer(Direction::ToHost, 0), 0, "nothing released");
    assert_eq!(rx.pending(), Ok(false), "every entry visited");
    // Back to 2: within a ring of the consumer index, but behind the receiver's cursor.
    peer.set_producer(Direction::ToHost, 0, 2);
    let want = ChannelError::Failed(Failure {
        direction: Direction::ToHost,
        engine: 0,
        error: RingError::ProducerRewound {
            producer: 2,
            previous: 4,
        },
    });
    assert_eq!(rx.pending(), Err(want));
    assert_eq!(rx.poll(64, |_| {}), Err(want));
    assert_eq!(lo.host().failure().map(ChannelError::Failed), Some(want));
    assert_eq!(lo.nic().peer_state(), SideState::Failed, "the host says so");
    assert_eq!(rx.stats().refused(), 0, "no stale entry was decided on");
}
