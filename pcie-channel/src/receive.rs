//! The receive path: one [`Receiver`] per direction scans every engine ring, gathers each
//! message's segments through their chain, and hands messages out in per-lane sequence order.
//!
//! A message whose lane is waiting for an earlier message (sent on another engine and not yet
//! visible) is parked, and later entries of the same ring are still delivered, so one slow flow
//! never blocks the others. Entries are released out of order; a ring's consumer index moves
//! over the released prefix. Each visit of an entry reads its descriptor once into a local copy
//! and decides on that copy alone; bad descriptors are counted and skipped, and no entry is ever
//! released twice (a chain that names an entry twice is refused).

use core::sync::atomic::{fence, AtomicU32, Ordering};

use crate::channel::{Channel, ChannelError, Failure, WAITING};
use crate::descriptor::{Descriptor, DescriptorError};
use crate::layout::{MAX_ENGINES, MAX_LANES, MAX_RING_ENTRIES, MAX_SEGMENTS};
use crate::region::{copy_from_shared, prefetch, RingMemory};
use crate::ring::{ConsumerIndex, IndexCell, RingError};

const DONE_WORDS: usize = MAX_RING_ENTRIES as usize / 64;

/// Counters of one receiver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceiveStats {
    /// Messages delivered.
    pub messages: u64,
    /// Payload bytes delivered.
    pub bytes: u64,
    /// Descriptors refused as malformed (bad segment numbering, length, chain, reserved byte,
    /// or a sequence number outside the in-flight window).
    pub corrupt: u64,
    /// Segments whose message had already been delivered or skipped.
    pub orphans: u64,
    /// Messages the lane gave up on because their descriptors were broken.
    pub skipped: u64,
    /// Times parked entries were scanned again after their lane moved.
    pub rescans: u64,
    /// Times a message head was found waiting: for an earlier message of its lane, or for a
    /// segment of its chain not yet visible.
    pub parked: u64,
}

impl ReceiveStats {
    /// Descriptors refused in any way: corrupt, orphaned, or part of a skipped message (what a
    /// NIC or host reports as the damage the other side did).
    pub const fn refused(&self) -> u64 {
        self.corrupt + self.orphans + self.skipped
    }
}

struct ReceiveRing<'c> {
    memory: RingMemory<'c>,
    index: ConsumerIndex<'c, AtomicU32>,
}

/// One validated segment of the message being delivered.
#[derive(Clone, Copy)]
struct Segment {
    data: *const u8,
    len: u16,
    engine: u8,
    position: u32,
}

// SAFETY: `data` points into the channel's region (Sync, valid while the receiver borrows the
// channel); a segment is plain data about where a message sits.
unsafe impl Send for Segment {}

const NO_SEGMENT: Segment = Segment {
    data: core::ptr::null(),
    len: 0,
    engine: 0,
    position: 0,
};

/// A message found ready for delivery; its segments are in `Receiver::chain[..segments]`.
#[derive(Clone, Copy, Debug)]
struct Ready {
    flow: u32,
    seq: u32,
    lane: usize,
    segments: usize,
    len: usize,
}

/// `index + 1` modulo `count` without a division (this runs per message).
#[inline(always)]
pub(crate) fn wrap_next(index: usize, count: usize) -> usize {
    if index + 1 >= count {
        0
    } else {
        index + 1
    }
}

/// What one visited ring entry turned out to be.
enum Step {
    Deliver(Ready),
    /// A message head waiting for its lane (or for segments not yet visible).
    Parked,
    /// A malformed or orphaned entry, released.
    Skipped,
    /// A non-first segment: delivered with its head.
    Segment,
    /// Already released (out of order, as part of a delivered message): not read.
    Released,
}

/// A delivered message: borrowed from the shared slots until the callback returns (or the
/// [`Received`] guard drops).
///
/// The bytes live in shared memory. An honest peer never writes them while they are borrowed; a
/// hostile one might, and then the bytes read are garbage, but every slice stays inside its slot.
#[derive(Clone, Copy)]
pub struct Message<'a> {
    flow: u32,
    seq: u32,
    len: usize,
    segments: &'a [Segment],
}

impl<'a> Message<'a> {
    /// The flow the sender gave.
    pub fn flow(&self) -> u32 {
        self.flow
    }

    /// The message's sequence number on its lane.
    pub fn seq(&self) -> u32 {
        self.seq
    }

    /// Total payload bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The payload in its segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.segments.iter().map(|s| {
            // SAFETY: `data` points at a slot of `slot_bytes >= len` bytes inside the region,
            // owned by the receiver until release, which cannot happen while `'a` lives.
            unsafe { core::slice::from_raw_parts(s.data, usize::from(s.len)) }
        })
    }

    /// The payload when it is one segment (any message up to a slot).
    pub fn as_contiguous(&self) -> Option<&'a [u8]> {
        match self.segments {
            [_] => self.segments().next(),
            _ => None,
        }
    }

    /// Copies the payload to the front of `out`; returns its length.
    #[inline]
    pub fn copy_to(&self, out: &mut [u8]) -> Result<usize, ChannelError> {
        let Some(out) = out.get_mut(..self.len) else {
            return Err(ChannelError::BufferTooSmall { len: self.len });
        };
        if let [single] = self.segments {
            // SAFETY: as below, for the one segment of `self.len` bytes.
            unsafe { copy_from_shared(single.data, out) };
            return Ok(self.len);
        }
        let mut at = 0;
        for s in self.segments {
            let len = usize::from(s.len);
            // SAFETY: the source is a slot of at least `len` bytes (see `segments`); the lengths
            // add up to `self.len`, the length of `out`.
            unsafe { copy_from_shared(s.data, &mut out[at..at + len]) };
            at += len;
        }
        Ok(at)
    }
}

impl core::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Message")
            .field("flow", &self.flow)
            .field("seq", &self.seq)
            .field("len", &self.len)
            .field("segments", &self.segments.len())
            .finish()
    }
}

/// The consumer of one direction. About 18 KiB: keep it in a `static` or a `Box` on small
/// stacks.
pub struct Receiver<'c> {
    channel: &'c Channel,
    /// One ring per engine; those past the engine count repeat ring 0 and are never used.
    rings: [ReceiveRing<'c>; MAX_ENGINES],
    engines: usize,
    mask: u32,
    slot_bytes: u32,
    lane_mask: u32,
    window: u32,
    done: [[u64; DONE_WORDS]; MAX_ENGINES],
    /// Entries of each ring released out of order (their bit set in `done`).
    done_count: [u32; MAX_ENGINES],
    cursor: [u32; MAX_ENGINES],
    expected: [u32; MAX_LANES as usize],
    next_engine: usize,
    /// Entries released since the credits were last returned.
    unpublished: u32,
    /// [`Receiver::poll`] returns credits whenever this many entries wait (a quarter of a
    /// ring), so the sender refills while a batch of large messages is still being read.
    publish_every: u32,
    parked: bool,
    progress: bool,
    chain: [Segment; MAX_SEGMENTS],
    /// Waits so far (bits 1.. of this side's waiting word).
    waits: u32,
    stats: ReceiveStats,
}

impl<'c> Receiver<'c> {
    pub(crate) fn new(channel: &'c Channel) -> Receiver<'c> {
        let layout = *channel.layout();
        let g = layout.geometry;
        let engines = g.engines as usize;
        let mut cursor = [0u32; MAX_ENGINES];
        // Rings past the engine count are never used; they repeat ring 0 so that every slot of
        // the array holds a ring (no `Option` on the hot path).
        let rings = core::array::from_fn(|engine| {
            let real = if engine < engines { engine } else { 0 };
            let memory = RingMemory::new(channel.region(), &layout, channel.inbound(), real);
            // Start where the ring stands (0 on a fresh region).
            let start = IndexCell::load(memory.consumer, Ordering::Relaxed);
            cursor[engine] = start;
            ReceiveRing {
                memory,
                index: ConsumerIndex::new(memory.producer, memory.consumer, g.ring_entries, start),
            }
        });
        // Go on from an earlier receiver's count, so that no sender takes a new wait for one
        // it already rang for; and disarm, since an earlier receiver that died while armed left
        // bit 0 set, and nobody waits now.
        let waits = channel.waiting_word() >> 1;
        channel.set_waiting_word(waits << 1);
        Receiver {
            channel,
            rings,
            engines: g.engines as usize,
            mask: g.ring_entries - 1,
            slot_bytes: g.slot_bytes,
            lane_mask: g.lanes - 1,
            window: g.engines * g.ring_entries,
            done: [[0; DONE_WORDS]; MAX_ENGINES],
            done_count: [0; MAX_ENGINES],
            cursor,
            expected: [0; MAX_LANES as usize],
            next_engine: 0,
            unpublished: 0,
            publish_every: (g.ring_entries / 4).max(1),
            parked: false,
            progress: false,
            chain: [NO_SEGMENT; MAX_SEGMENTS],
            waits,
            stats: ReceiveStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> ReceiveStats {
        self.stats
    }

    /// Delivers up to `max` messages in order to `deliver`, releasing each after the callback
    /// returns, and returns the credits to the sender once at the end. Returns how many were
    /// delivered; an error only when none was.
    pub fn poll<F>(&mut self, max: usize, mut deliver: F) -> Result<usize, ChannelError>
    where
        F: FnMut(Message<'_>),
    {
        self.channel.health()?;
        let mut delivered = 0;
        let mut outcome = Ok(());
        while delivered < max {
            let (run, next) = self.deliver_run(max - delivered, &mut deliver);
            delivered += run;
            let next = match next {
                Ok(None) if run != 0 => {
                    if self.unpublished >= self.publish_every {
                        self.publish();
                    }
                    continue;
                }
                Ok(None) => self.next_ready(),
                other => other,
            };
            let ready = match next {
                Ok(Some(ready)) => ready,
                Ok(None) => break,
                Err(error) => {
                    outcome = Err(error);
                    break;
                }
            };
            deliver(self.message(&ready));
            self.release(&ready);
            delivered += 1;
            if self.unpublished >= self.publish_every {
                self.publish();
            }
        }
        self.publish();
        match outcome {
            Err(error) if delivered == 0 => Err(error),
            _ => Ok(delivered),
        }
    }

    /// Borrows the next message; it is released (and its credit returned) when the guard drops.
    pub fn recv(&mut self) -> Result<Option<Received<'_, 'c>>, ChannelError> {
        Ok(self.next()?.map(|ready| Received {
            receiver: self,
            ready,
        }))
    }

    /// Copies the next message into `out`; returns its flow and length. A message larger than
    /// `out` stays queued and the error says its length.
    pub fn recv_into(&mut self, out: &mut [u8]) -> Result<Option<(u32, usize)>, ChannelError> {
        let Some(ready) = self.next()? else {
            return Ok(None);
        };
        if ready.len > out.len() {
            // Visit its head again next time (a new read and a new decision).
            let head = self.chain[0];
            self.cursor[usize::from(head.engine)] = head.position;
            return Err(ChannelError::BufferTooSmall { len: ready.len });
        }
        let len = self.message(&ready).copy_to(out)?;
        self.release(&ready);
        self.publish();
        Ok(Some((ready.flow, len)))
    }

    /// Returns released entries to the sender as credits.
    pub fn publish(&mut self) {
        for ring in &mut self.rings[..self.engines] {
            ring.index.publish();
        }
        self.unpublished = 0;
    }

    /// Whether the next receive may find something: a ring holds an entry this receiver has
    /// not visited yet (every producer index is read once, C1), or a parked entry may have
    /// become deliverable since it was visited. After a call that found nothing to deliver,
    /// nothing else can make a message deliverable, so this is what a receiver about to sleep
    /// checks.
    pub fn pending(&mut self) -> Result<bool, ChannelError> {
        self.channel.health()?;
        self.refresh_all()?;
        Ok(!self.visited_all() || (self.parked && self.progress))
    }

    /// Before sleeping (docs/pcie-channel.md §4.4): sets this side's waiting word, so that a
    /// sender with a doorbell rings it after publishing, then checks the rings once more.
    /// Returns whether something arrived meanwhile: then do not sleep (the word is cleared
    /// again). Otherwise sleep on the doorbell (with a timeout) and call
    /// [`Self::disarm_wait`] on waking. [`crate::Receiver::wait`] does all of this over an
    /// eventfd.
    pub fn arm_wait(&mut self) -> Result<bool, ChannelError> {
        // A new wait: the count in bits 1.. moves, so a sender rings once for it.
        self.waits = self.waits.wrapping_add(1);
        self.channel.set_waiting_word(self.waits << 1 | WAITING);
        // W1: SeqCst, orders the store of the waiting word before the producer-index loads of
        // the re-check below; pairs with W2, the sender's fence between its producer-index store
        // (P1) and its load of our waiting word (see `notify`).
        fence(Ordering::SeqCst);
        let arrived = self.pending();
        if !matches!(arrived, Ok(false)) {
            self.disarm_wait();
        }
        arrived
    }

    /// After waking: clears this side's waiting word (senders stop ringing).
    pub fn disarm_wait(&mut self) {
        self.channel.set_waiting_word(self.waits << 1);
    }

    /// The next deliverable message. When nothing is parked and every ring was visited up to
    /// the producer index last read, only new entries can hold one: a look that finds no
    /// producer index moved is over there (what a spinning receiver repeats), and otherwise the
    /// first new entry, from the current ring on, is visited here (usually it is the message);
    /// the general way goes on from there.
    #[inline]
    fn next(&mut self) -> Result<Option<Ready>, ChannelError> {
        self.channel.health()?;
        if !self.parked && self.visited_all() {
            if !self.refresh_all()? {
                return Ok(None);
            }
            let mut engine = self.next_engine;
            for _ in 0..self.engines {
                if self.cursor[engine] != self.ring(engine).index.head() {
                    let step = self.visit(engine)?;
                    if let Some(ready) = self.note(step) {
                        self.next_engine = engine;
                        return Ok(Some(ready));
                    }
                    break;
                }
                engine = wrap_next(engine, self.engines);
            }
        }
        self.next_ready()
    }

    /// Whether every ring was visited up to the producer index last read.
    #[inline]
    fn visited_all(&self) -> bool {
        let mut unvisited = 0;
        for (ring, cursor) in self.rings.iter().zip(&self.cursor).take(self.engines) {
            unvisited |= cursor ^ ring.index.head();
        }
        unvisited == 0
    }

    /// Reads every ring's producer index once (C1) and checks it; returns whether one moved.
    #[inline]
    fn refresh_all(&mut self) -> Result<bool, ChannelError> {
        let mut moved = 0;
        for engine in 0..self.engines.min(MAX_ENGINES) {
            let index = &mut self.rings[engine].index;
            let old = index.head();
            match index.available() {
                Ok(head) => moved |= head ^ old,
                Err(error) => return Err(self.fail(engine, error)),
            }
        }
        Ok(moved != 0)
    }

    fn message(&self, ready: &Ready) -> Message<'_> {
        Message {
            flow: ready.flow,
            seq: ready.seq,
            len: ready.len,
            segments: &self.chain[..ready.segments],
        }
    }

    #[inline(always)]
    fn ring(&self, engine: usize) -> &ReceiveRing<'c> {
        &self.rings[engine]
    }

    #[inline(always)]
    fn ring_mut(&mut self, engine: usize) -> &mut ReceiveRing<'c> {
        &mut self.rings[engine]
    }

    fn is_done(&self, engine: usize, position: u32) -> bool {
        let bit = (position & self.mask & (MAX_RING_ENTRIES - 1)) as usize;
        self.done[engine][bit / 64] & (1 << (bit % 64)) != 0
    }

    fn set_done(&mut self, engine: usize, position: u32, done: bool) {
        let bit = (position & self.mask & (MAX_RING_ENTRIES - 1)) as usize;
        let word = &mut self.done[engine][bit / 64];
        if done {
            *word |= 1 << (bit % 64);
            self.done_count[engine] += 1;
        } else {
            *word &= !(1 << (bit % 64));
            self.done_count[engine] -= 1;
        }
    }

    /// Releases one entry, once: at the ring's front (the usual case) the consumer index simply
    /// moves on; elsewhere it is marked and released when the front reaches it. An entry that is
    /// not visible or already released is never released again (marking it would mark the
    /// later entry that shares its slot): that is counted as corrupt.
    #[inline(always)]
    fn release_entry(&mut self, engine: usize, position: u32) {
        let ring = self.ring_mut(engine);
        let tail = ring.index.tail();
        let offset = position.wrapping_sub(tail);
        if offset >= ring.index.head().wrapping_sub(tail)
            || (offset != 0 && self.is_done(engine, position))
        {
            self.stats.corrupt += 1;
            log::debug!("pcie-channel: engine {engine} entry {position} released twice, refused");
            return;
        }
        if offset != 0 {
            self.set_done(engine, position, true);
            return;
        }
        self.ring_mut(engine)
            .index
            .release_to(position.wrapping_add(1));
        if self.cursor[engine] == position {
            self.cursor[engine] = position.wrapping_add(1);
        }
        if self.done_count[engine] != 0 {
            self.advance(engine);
        }
    }

    fn fail(&self, engine: usize, error: RingError) -> ChannelError {
        self.channel.fail(Failure {
            direction: self.channel.inbound(),
            engine: engine as u8,
            error,
        })
    }

    /// Reads a ring's producer index once and checks it.
    fn refresh(&mut self, engine: usize) -> Result<u32, ChannelError> {
        let result = self.ring_mut(engine).index.available();
        result.map_err(|error| self.fail(engine, error))
    }

    /// The lane and length of a whole one-segment message that is its lane's next, from one
    /// private copy of its descriptor words; `None` for any other entry.
    #[inline(always)]
    fn whole_next(&self, [flow, seq, shape, link]: [u32; 4]) -> Option<(usize, u32)> {
        // Segment 0 of 1, no next segment, reserved byte 0, length within the slot.
        let len = shape & 0xffff;
        if shape >> 16 != 1 << 8 || link != 0 || len > self.slot_bytes {
            return None;
        }
        let lane = (flow & self.lane_mask) as usize & (MAX_LANES as usize - 1);
        (seq == self.expected[lane]).then_some((lane, len))
    }

    /// The common case of [`Self::poll`], kept short: the current ring's oldest entries are whole
    /// one-segment messages, each the next of its lane, and nothing behind them was released
    /// out of order. Delivers that run (at most `budget` and the credit-return interval) in
    /// place, then releases it with one move of the consumer index. Each entry is decided on
    /// one private copy of its descriptor words; the entry that ends the run is not such a
    /// message (that is why it ends the run), so it goes straight to the general rules
    /// ([`Self::classify`]) on that same copy and is returned if it is deliverable. Returns how
    /// many it delivered, and that entry's outcome.
    #[inline]
    fn deliver_run<F>(
        &mut self,
        budget: usize,
        deliver: &mut F,
    ) -> (usize, Result<Option<Ready>, ChannelError>)
    where
        F: FnMut(Message<'_>),
    {
        let engine = self.next_engine;
        let Some(ring) = self.rings.get(engine) else {
            return (0, Ok(None));
        };
        let memory = ring.memory;
        let tail = ring.index.tail();
        if self.cursor[engine] != tail || self.done_count[engine] != 0 {
            return (0, Ok(None));
        }
        let room = self.publish_every.saturating_sub(self.unpublished).max(1);
        let count = ring.index.head().wrapping_sub(tail).min(room) as usize;
        let end = tail.wrapping_add(count.min(budget) as u32);
        let mut position = tail;
        let mut bytes = 0u64;
        let mut declined = None;
        while position != end {
            let words = Descriptor::load_words(memory.descriptor(position));
            let Some((lane, len)) = self.whole_next(words) else {
                declined = Some(words);
                break;
            };
            let segment = Segment {
                data: memory.slot(position),
                len: len as u16,
                engine: engine as u8,
                position,
            };
            deliver(Message {
                flow: words[0],
                seq: words[1],
                len: len as usize,
                segments: core::slice::from_ref(&segment),
            });
            self.expected[lane] = words[1].wrapping_add(1);
            bytes += u64::from(len);
            position = position.wrapping_add(1);
        }
        let delivered = position.wrapping_sub(tail);
        if delivered != 0 {
            self.ring_mut(engine).index.release_to(position);
            self.cursor[engine] = position;
            self.unpublished += delivered;
            self.progress = true;
            self.stats.messages += u64::from(delivered);
            self.stats.bytes += bytes;
        }
        let Some(words) = declined else {
            return (delivered as usize, Ok(None));
        };
        self.cursor[engine] = position.wrapping_add(1);
        let step = self.classify(engine, position, Descriptor::from_words(words));
        (delivered as usize, step.map(|step| self.note(step)))
    }

    /// Finds the next deliverable message: visits each ring's entries from its cursor, then
    /// reads the producer indices once more and, if a parked entry may have become deliverable,
    /// visits the unreleased entries again. At most two passes over the in-flight entries per
    /// call.
    fn next_ready(&mut self) -> Result<Option<Ready>, ChannelError> {
        let mut refreshed = false;
        loop {
            let mut engine = self.next_engine;
            for _ in 0..self.engines {
                while self.cursor[engine] != self.ring(engine).index.head() {
                    let step = self.visit(engine)?;
                    if let Some(ready) = self.note(step) {
                        // Stay on this ring while it has entries: every ring is still
                        // served once per snapshot of the producer indices.
                        self.next_engine = engine;
                        return Ok(Some(ready));
                    }
                }
                engine = wrap_next(engine, self.engines);
            }
            if refreshed {
                return Ok(None);
            }
            refreshed = true;
            let new = self.refresh_all()?;
            if self.parked && (self.progress || new) {
                for engine in 0..self.engines {
                    self.cursor[engine] = self.ring(engine).index.tail();
                }
                self.parked = false;
                self.progress = false;
                self.stats.rescans += 1;
            } else if !new {
                return Ok(None);
            }
        }
    }

    /// Records what a visit found; returns the message if it is deliverable.
    #[inline]
    fn note(&mut self, step: Step) -> Option<Ready> {
        match step {
            Step::Deliver(ready) => return Some(ready),
            Step::Parked => {
                self.parked = true;
                self.stats.parked += 1;
            }
            Step::Skipped => self.progress = true,
            Step::Segment | Step::Released => {}
        }
        None
    }

    /// Visits the entry at `engine`'s cursor and moves the cursor past it: an entry not yet
    /// released has its descriptor read once, and is decided on that copy.
    #[inline(always)]
    fn visit(&mut self, engine: usize) -> Result<Step, ChannelError> {
        let position = self.cursor[engine];
        self.cursor[engine] = position.wrapping_add(1);
        // The ring's oldest entry is never marked released (its release moves the front).
        if position != self.ring(engine).index.tail() && self.is_done(engine, position) {
            return Ok(Step::Released);
        }
        let memory = self.ring(engine).memory;
        // Start the slot's line on its way while the descriptor's travels.
        prefetch(memory.slot(position));
        let words = Descriptor::load_words(memory.descriptor(position));
        self.decide(engine, position, words)
    }

    /// Decides the entry at `position` of `engine` on `words`, its descriptor as read once: the
    /// common kind here, anything else by [`Self::classify`].
    #[inline(always)]
    fn decide(
        &mut self,
        engine: usize,
        position: u32,
        words: [u32; 4],
    ) -> Result<Step, ChannelError> {
        if let Some((lane, len)) = self.whole_next(words) {
            self.chain[0] = Segment {
                data: self.ring(engine).memory.slot(position),
                len: len as u16,
                engine: engine as u8,
                position,
            };
            return Ok(Step::Deliver(Ready {
                flow: words[0],
                seq: words[1],
                lane,
                segments: 1,
                len: len as usize,
            }));
        }
        self.classify(engine, position, Descriptor::from_words(words))
    }

    /// Every kind of entry but a whole message that is its lane's next ([`Self::whole_next`]):
    /// checks `descriptor` (read once by the caller), refuses, parks or gathers.
    #[inline(never)]
    fn classify(
        &mut self,
        engine: usize,
        position: u32,
        descriptor: Descriptor,
    ) -> Result<Step, ChannelError> {
        let lane = (descriptor.flow & self.lane_mask) as usize;
        if let Err(error) = descriptor.check(self.slot_bytes, self.engines as u32, self.mask + 1) {
            if descriptor.segment == 0 && descriptor.seq == self.expected[lane] {
                self.skip_message(lane);
            }
            self.discard(engine, position, error);
            return Ok(Step::Skipped);
        }
        let ahead = descriptor.seq.wrapping_sub(self.expected[lane]);
        if (ahead as i32) < 0 {
            self.discard(engine, position, DescriptorError::Orphan);
            return Ok(Step::Skipped);
        }
        if ahead >= self.window {
            self.discard(engine, position, DescriptorError::Sequence);
            return Ok(Step::Skipped);
        }
        if descriptor.segment != 0 {
            return Ok(Step::Segment);
        }
        if ahead != 0 {
            return Ok(Step::Parked);
        }
        self.gather(engine, position, descriptor, lane)
    }

    /// Follows the chain of the lane's next message from its head; every link is checked
    /// against the geometry, the ring windows and the head's identity, and read once.
    ///
    /// On each engine a link must lie past the chain's previous entry there (an honest sender
    /// claims a message's entries in order, docs/pcie-channel.md §5.2): so no entry can appear
    /// twice in one chain, whatever the peer rewrites between two reads, and none is released
    /// twice.
    fn gather(
        &mut self,
        engine: usize,
        position: u32,
        head: Descriptor,
        lane: usize,
    ) -> Result<Step, ChannelError> {
        self.chain[0] = Segment {
            data: self.ring(engine).memory.slot(position),
            len: head.len,
            engine: engine as u8,
            position,
        };
        // Per engine: one past the offset (from the ring's tail) of the chain's last entry there.
        let mut floor = [0u32; MAX_ENGINES];
        floor[engine] = position.wrapping_sub(self.ring(engine).index.tail()) + 1;
        let mut len = usize::from(head.len);
        let mut previous = head;
        for i in 1..usize::from(head.segments) {
            // `check` bounded next_engine by the engine count and next_slot by the depth.
            let next_engine = usize::from(previous.next_engine);
            let tail = self.ring(next_engine).index.tail();
            let offset = u32::from(previous.next_slot).wrapping_sub(tail) & self.mask;
            let next = tail.wrapping_add(offset);
            if offset < floor[next_engine] {
                return Ok(self.broken_chain(engine, position, lane));
            }
            if offset >= self.ring(next_engine).index.head().wrapping_sub(tail) {
                // An honest sender published this ring before the head's: look once more.
                let head_index = self.refresh(next_engine)?;
                if offset >= head_index.wrapping_sub(tail) {
                    return Ok(Step::Parked);
                }
            }
            let link = Descriptor::load(self.ring(next_engine).memory.descriptor(next));
            let belongs = !self.is_done(next_engine, next)
                && link
                    .check(self.slot_bytes, self.engines as u32, self.mask + 1)
                    .is_ok()
                && link.flow == head.flow
                && link.seq == head.seq
                && link.segments == head.segments
                && usize::from(link.segment) == i;
            if !belongs {
                return Ok(self.broken_chain(engine, position, lane));
            }
            floor[next_engine] = offset + 1;
            self.chain[i] = Segment {
                data: self.ring(next_engine).memory.slot(next),
                len: link.len,
                engine: next_engine as u8,
                position: next,
            };
            len += usize::from(link.len);
            previous = link;
        }
        Ok(Step::Deliver(Ready {
            flow: head.flow,
            seq: head.seq,
            lane,
            segments: usize::from(head.segments),
            len,
        }))
    }

    /// Gives up on the lane's next message, whose chain is broken: its head is released and
    /// counted, its other segments become orphans that the next visit releases.
    fn broken_chain(&mut self, engine: usize, position: u32, lane: usize) -> Step {
        self.skip_message(lane);
        self.discard(engine, position, DescriptorError::Chain);
        Step::Skipped
    }

    /// The lane gives up on its next message. Segments of it already visited are orphans now:
    /// the next call visits the unreleased entries again and releases them.
    fn skip_message(&mut self, lane: usize) {
        self.expected[lane] = self.expected[lane].wrapping_add(1);
        self.stats.skipped += 1;
        self.parked = true;
        self.progress = true;
    }

    /// Releases a refused entry and counts it.
    fn discard(&mut self, engine: usize, position: u32, error: DescriptorError) {
        match error {
            DescriptorError::Orphan => self.stats.orphans += 1,
            _ => self.stats.corrupt += 1,
        }
        log::debug!("pcie-channel: engine {engine} entry {position}: {error}");
        self.release_entry(engine, position);
    }

    /// Releases a delivered message's entries and moves its lane on.
    #[inline]
    fn release(&mut self, ready: &Ready) {
        for i in 0..ready.segments.min(MAX_SEGMENTS) {
            let segment = self.chain[i];
            self.release_entry(usize::from(segment.engine), segment.position);
        }
        self.unpublished += ready.segments as u32;
        self.expected[ready.lane] = self.expected[ready.lane].wrapping_add(1);
        self.stats.messages += 1;
        self.stats.bytes += ready.len as u64;
        self.progress = true;
    }

    /// Moves a ring's consumer index over the entries at its front already released out of
    /// order (their marks cleared on the way). Reads no descriptor.
    fn advance(&mut self, engine: usize) {
        let old_tail = self.ring(engine).index.tail();
        let head = self.ring(engine).index.head();
        let mut tail = old_tail;
        while tail != head && self.is_done(engine, tail) {
            self.set_done(engine, tail, false);
            tail = tail.wrapping_add(1);
        }
        if tail == old_tail {
            return;
        }
        self.ring_mut(engine).index.release_to(tail);
        // Never visit released entries: the producer may already be refilling them.
        if self.cursor[engine].wrapping_sub(old_tail) < tail.wrapping_sub(old_tail) {
            self.cursor[engine] = tail;
        }
    }
}

impl Drop for Receiver<'_> {
    fn drop(&mut self) {
        self.publish();
        self.disarm_wait();
        self.channel.unclaim_receiver();
    }
}

/// A borrowed message ([`Receiver::recv`]); released when dropped.
pub struct Received<'r, 'c> {
    receiver: &'r mut Receiver<'c>,
    ready: Ready,
}

impl Received<'_, '_> {
    /// The message.
    pub fn message(&self) -> Message<'_> {
        self.receiver.message(&self.ready)
    }
}

impl Drop for Received<'_, '_> {
    fn drop(&mut self) {
        self.receiver.release(&self.ready);
        self.receiver.publish();
    }
}

#[cfg(test)]
mod tests {
    use crate::layout::Geometry;
    use crate::{EngineSet, Loopback};

    #[test]
    fn an_entry_is_never_released_twice() {
        let geometry = Geometry {
            engines: 1,
            ring_entries: 4,
            slot_bytes: 64,
            lanes: 1,
        };
        let lo = Loopback::new(geometry).unwrap();
        let mut tx = lo.host().sender(EngineSet::single(0)).unwrap();
        let mut rx = lo.nic().receiver().unwrap();
        for i in 0..3u8 {
            tx.send(0, &[i]).unwrap();
        }
        rx.refresh_all().unwrap();
        // Entry 2 out of order, then again (as a chain naming it twice would): refused.
        rx.release_entry(0, 2);
        rx.release_entry(0, 2);
        assert_eq!((rx.stats.corrupt, rx.done_count[0]), (1, 1));
        // The front, then again once it is behind the front: refused.
        rx.release_entry(0, 0);
        rx.release_entry(0, 0);
        assert_eq!((rx.stats.corrupt, rx.ring(0).index.tail()), (2, 1));
        // Entry 1 moves the front over 2 as well; entry 3 is not visible: refused.
        rx.release_entry(0, 1);
        assert_eq!((rx.ring(0).index.tail(), rx.done_count[0]), (3, 0));
        rx.release_entry(0, 3);
        assert_eq!((rx.stats.corrupt, rx.ring(0).index.tail()), (3, 3));
        assert!(
            rx.done.iter().flatten().all(|&word| word == 0),
            "no mark left"
        );
    }
}
