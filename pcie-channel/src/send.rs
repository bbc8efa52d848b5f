//! The send path: a [`Sender`] owns a set of engines of the outbound direction, splits each
//! message into slot-sized segments, spreads them over its engines round-robin, stamps them
//! with the lane's next sequence number and publishes, the rings holding a message's first
//! segment last. Credits are free ring entries: a full channel answers
//! [`ChannelError::WouldBlock`] and nothing is dropped or overwritten. An optional [`Notify`]
//! hook wakes a peer that sleeps instead of polling.

use core::sync::atomic::{fence, AtomicU32, Ordering};

use crate::channel::{Channel, ChannelError, EngineSet, Failure, WAITING};
use crate::descriptor::Descriptor;
use crate::layout::{MAX_ENGINES, MAX_SEGMENTS};
use crate::notify::Notify;
use crate::receive::wrap_next;
use crate::region::{copy_to_shared, RingMemory};
use crate::ring::{ProducerIndex, RingError};

/// Counters of one sender.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendStats {
    /// Messages published.
    pub messages: u64,
    /// Payload bytes published.
    pub bytes: u64,
    /// Segments (ring entries) used.
    pub segments: u64,
    /// Sends refused for lack of credit.
    pub would_block: u64,
    /// Times the doorbell was rung (a publication while the peer said it was waiting).
    pub notifications: u64,
    /// Rings of the doorbell that failed ([`crate::notify::NotifyError`]).
    pub notify_errors: u64,
}

struct SendRing<'c> {
    memory: RingMemory<'c>,
    index: ProducerIndex<'c, AtomicU32>,
    engine: u8,
}

/// Where one segment goes.
#[derive(Clone, Copy, Default)]
struct Placement {
    ring: u8,
    position: u32,
}

/// The producer of a set of engines. Not `Sync`: one core (thread) drives it; other cores claim
/// other engines. Dropping it releases its engines.
pub struct Sender<'c> {
    channel: &'c Channel,
    engines: EngineSet,
    rings: [Option<SendRing<'c>>; MAX_ENGINES],
    count: usize,
    cursor: usize,
    slot_bytes: usize,
    slot_shift: u32,
    lane_mask: u32,
    max_message: usize,
    /// Whether this sender owns every engine of its direction, and so the lane counters.
    exclusive: bool,
    /// Segments written since the last publication.
    unpublished: u32,
    /// Rings (bit = index in `rings`) holding the first segment of an unpublished message of
    /// several segments: published after the others.
    heads: u16,
    /// Rung after a publication when the peer's receiver is waiting.
    doorbell: Option<&'c dyn Notify>,
    /// The peer's waiting word when the doorbell was last rung: one ring per wait.
    rung_for: u32,
    /// [`Self::send_batch`] publishes whenever this many segments are waiting (a quarter of a
    /// ring), so that the receiver starts on a batch of large messages before it is complete.
    publish_every: u32,
    stats: SendStats,
}

impl<'c> Sender<'c> {
    pub(crate) fn new(channel: &'c Channel, engines: EngineSet) -> Sender<'c> {
        let layout = *channel.layout();
        let g = layout.geometry;
        let mut rings: [Option<SendRing<'c>>; MAX_ENGINES] = Default::default();
        let mut count = 0;
        let mut failure = None;
        for engine in engines.iter() {
            let memory = RingMemory::new(channel.region(), &layout, channel.outbound(), engine);
            // Start where the ring stands (0 on a fresh region). A garbage value here only
            // means the consumer will refuse our ring.
            let start = crate::ring::IndexCell::load(
                memory.producer,
                core::sync::atomic::Ordering::Relaxed,
            );
            match ProducerIndex::new(memory.producer, memory.consumer, g.ring_entries, start) {
                Ok(index) => {
                    rings[count] = Some(SendRing {
                        memory,
                        index,
                        engine: engine as u8,
                    });
                    count += 1;
                }
                Err(error) => failure = Some((engine, error)),
            }
        }
        if let Some((engine, error)) = failure {
            channel.fail(Failure {
                direction: channel.outbound(),
                engine: engine as u8,
                error,
            });
        }
        let slots = count * g.ring_entries as usize;
        let max_segments = slots.min(MAX_SEGMENTS);
        Sender {
            channel,
            engines,
            rings,
            count,
            cursor: 0,
            slot_bytes: g.slot_bytes as usize,
            slot_shift: g.slot_bytes.trailing_zeros(),
            lane_mask: g.lanes - 1,
            max_message: max_segments * g.slot_bytes as usize,
            exclusive: engines == EngineSet::first(g.engines as usize),
            unpublished: 0,
            heads: 0,
            doorbell: None,
            rung_for: 0,
            publish_every: (g.ring_entries / 4).max(1),
            stats: SendStats::default(),
        }
    }

    /// The engines this sender owns.
    pub fn engines(&self) -> EngineSet {
        self.engines
    }

    /// The largest message this sender can send.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message
    }

    /// Bytes of one slot: the largest zero-copy reservation.
    pub fn slot_bytes(&self) -> usize {
        self.slot_bytes
    }

    /// Counters so far.
    pub fn stats(&self) -> SendStats {
        self.stats
    }

    /// Sets (or removes) the hook rung after a publication while the peer's receiver waits on
    /// it ([`crate::Receiver::wait`]); without one (the default) the peer must poll.
    pub fn set_doorbell(&mut self, doorbell: Option<&'c dyn Notify>) {
        self.doorbell = doorbell;
    }

    fn ring_failure(&self, ring: usize, error: RingError) -> ChannelError {
        let engine = self.rings[ring].as_ref().map_or(0, |r| r.engine);
        self.channel.fail(Failure {
            direction: self.channel.outbound(),
            engine,
            error,
        })
    }

    fn ring(&mut self, ring: usize) -> &mut SendRing<'c> {
        // Invariant: rings[..count] are all Some (set in `new`), and callers index below count.
        match self.rings[ring].as_mut() {
            Some(r) => r,
            None => unreachable!("ring {ring} below count is always present"),
        }
    }

    /// Sends one message on `flow` and publishes it.
    #[inline]
    pub fn send(&mut self, flow: u32, data: &[u8]) -> Result<(), ChannelError> {
        let result = self.write(flow, data);
        self.publish();
        result
    }

    /// Writes one message without publishing it: it takes its sequence number now and becomes
    /// visible at the next [`Self::publish`] (or any publishing call). Lets a caller batch
    /// messages from several places; publish promptly, since later messages of the same lanes
    /// from other senders wait for these.
    pub fn queue(&mut self, flow: u32, data: &[u8]) -> Result<(), ChannelError> {
        self.write(flow, data)
    }

    /// Sends messages until one does not fit, publishing once at the end (and whenever a
    /// quarter of a ring's worth of segments waits, so large messages flow while the batch is
    /// written); returns how many were sent. An error is returned only when the first message
    /// could not be sent.
    pub fn send_batch<'m, I>(&mut self, messages: I) -> Result<usize, ChannelError>
    where
        I: IntoIterator<Item = (u32, &'m [u8])>,
    {
        self.channel.health()?;
        let mut sent = 0;
        let mut outcome = Ok(());
        for (flow, data) in messages {
            if let Err(error) = self.write_healthy(flow, data) {
                outcome = Err(error);
                break;
            }
            sent += 1;
            if self.unpublished >= self.publish_every {
                self.publish();
            }
        }
        self.publish();
        match outcome {
            Err(error) if sent == 0 => Err(error),
            _ => Ok(sent),
        }
    }

    /// Zero-copy batch send: writes up to `max` one-slot messages straight into their shared
    /// slots and publishes them once. `fill(i, slot)` writes message `i` into `slot` (the whole
    /// slot, [`Self::slot_bytes`] long) and returns its flow and length, or `None` to end the
    /// batch there. Stops early when the credit runs out; returns how many messages were sent.
    /// An error is returned only when none was (a `fill` that returns a length beyond the slot
    /// ends the batch with [`ChannelError::TooLarge`], its slot unused).
    pub fn send_with<F>(&mut self, max: usize, mut fill: F) -> Result<usize, ChannelError>
    where
        F: FnMut(usize, &mut [u8]) -> Option<(u32, usize)>,
    {
        self.channel.health()?;
        let mut sent = 0;
        let mut outcome = Ok(());
        while sent < max {
            let run = match self.run_credits(max - sent) {
                Ok(run) => run,
                Err(error) => {
                    outcome = Err(error);
                    break;
                }
            };
            let (written, end) = self.fill_run(sent, run, &mut fill);
            sent += written;
            if let Err(error) = end {
                outcome = Err(error);
                break;
            }
            if written < run {
                break;
            }
            self.publish();
        }
        self.publish();
        match outcome {
            Err(error) if sent == 0 => Err(error),
            _ => Ok(sent),
        }
    }

    /// Positions the current engine can take without waiting (at most `want` and the
    /// publication interval), moving to another engine when it has none.
    #[inline]
    fn run_credits(&mut self, want: usize) -> Result<usize, ChannelError> {
        let want = want.min(self.publish_every as usize) as u32;
        let cached = match self.rings.get(self.cursor) {
            Some(Some(ring)) => ring.index.cached_credits(),
            _ => 0,
        };
        if cached != 0 {
            return Ok(cached.min(want) as usize);
        }
        // Let `plan` pick (and refresh) an engine with credit, then count what it has.
        let Placement { ring, .. } = self.claim_one()?;
        let ring = self.ring(usize::from(ring));
        ring.index.unclaim();
        Ok(ring.index.cached_credits().min(want) as usize)
    }

    /// Fills `run` consecutive positions of the current engine (which has that much credit)
    /// through `fill`; returns how many messages it wrote, and the error that ended it early.
    #[inline]
    fn fill_run<F>(
        &mut self,
        first: usize,
        run: usize,
        fill: &mut F,
    ) -> (usize, Result<(), ChannelError>)
    where
        F: FnMut(usize, &mut [u8]) -> Option<(u32, usize)>,
    {
        let cursor = self.cursor;
        let slot_bytes = self.slot_bytes;
        let mut written = 0;
        let mut bytes = 0;
        let mut end = Ok(());
        while written < run {
            let Some(Some(ring)) = self.rings.get(cursor) else {
                break;
            };
            let position = ring.index.head();
            // SAFETY: `position` is the next claim of a ring with credit: its slot is this
            // sender's alone until published, `slot_bytes` long, and the borrow ends with `fill`.
            let slot =
                unsafe { core::slice::from_raw_parts_mut(ring.memory.slot(position), slot_bytes) };
            let Some((flow, len)) = fill(first + written, slot) else {
                break;
            };
            if len > slot_bytes {
                end = Err(ChannelError::TooLarge {
                    len,
                    max: slot_bytes,
                });
                break;
            }
            let seq = self.next_seq(flow);
            let Some(Some(ring)) = self.rings.get_mut(cursor) else {
                break;
            };
            if ring.index.claim().is_none() {
                unreachable!("run_credits counted this position's credit");
            }
            Descriptor::whole(flow, seq, len as u16).store(ring.memory.descriptor(position));
            written += 1;
            bytes += len;
        }
        self.unpublished += written as u32;
        self.stats.messages += written as u64;
        self.stats.segments += written as u64;
        self.stats.bytes += bytes as u64;
        (written, end)
    }

    /// Reserves one slot for a message of at most `len` bytes (at most [`Self::slot_bytes`]):
    /// write it in place, then [`Reservation::commit`] (or [`Reservation::queue`] and
    /// [`Self::publish`] once for a batch). Dropping the reservation gives the slot back.
    #[inline]
    pub fn reserve(&mut self, flow: u32, len: usize) -> Result<Reservation<'_, 'c>, ChannelError> {
        self.channel.health()?;
        if len > self.slot_bytes {
            return Err(ChannelError::TooLarge {
                len,
                max: self.slot_bytes,
            });
        }
        let Placement { ring, position } = self.claim_one()?;
        Ok(Reservation {
            sender: Some(self),
            flow,
            ring: ring as usize,
            position,
            len,
        })
    }

    /// Makes every written message visible to the receiver, then rings the doorbell if the peer
    /// waits on it.
    ///
    /// Rings holding the first segment of a message of several segments are published last
    /// (docs/pcie-channel.md §4.3), so that a receiver that sees such a head finds the rest of
    /// its chain already published on the other rings. Not always: when uneven credit has put
    /// the heads of a batch on two rings, each may hold segments of the other's message, and
    /// whichever of the two is published first shows a head whose chain is not all visible yet.
    /// The receiver parks that head and takes it once the other ring is published (§5.3).
    ///
    /// One-segment messages stay on the current engine until it runs out of credit: moving on
    /// at every batch would let the receiver see a later batch before an earlier one (it reads
    /// the rings' indices one after the other) and park it, which costs more than it spreads.
    pub fn publish(&mut self) {
        let [first, last] = publication_order(self.count, self.heads);
        // Not `||`: the rings of `last` are published whatever `first` held.
        let published = self.publish_rings(first) | self.publish_rings(last);
        self.heads = 0;
        self.unpublished = 0;
        if let (true, Some(doorbell)) = (published, self.doorbell) {
            self.notify(doorbell);
        }
    }

    /// Publishes the rings whose bits are set in `rings`, ascending; returns whether one of
    /// them had anything to publish.
    #[inline(always)]
    fn publish_rings(&mut self, mut rings: u16) -> bool {
        let mut published = false;
        while rings != 0 {
            let ring = rings.trailing_zeros() as usize;
            rings &= rings - 1;
            if let Some(Some(ring)) = self.rings.get_mut(ring) {
                published |= ring.index.publish();
            }
        }
        published
    }

    /// Publishes one ring (a committed reservation), or every ring when a message of several
    /// segments waits (so that its head's ring still goes last).
    fn publish_ring(&mut self, ring: usize) {
        if self.heads != 0 {
            return self.publish();
        }
        let published = match self.rings[ring].as_mut() {
            Some(target) => target.index.publish(),
            None => false,
        };
        if let (true, Some(doorbell)) = (published, self.doorbell) {
            self.notify(doorbell);
        }
    }

    /// Rings `doorbell` (this sender's) if the peer's receiver is waiting, once per wait; the
    /// caller has published something. Out of line: a sender with a doorbell serves a peer
    /// that sleeps, whose wake-up costs far more than this call.
    #[inline(never)]
    fn notify(&mut self, doorbell: &dyn Notify) {
        // W2: SeqCst, orders the producer-index stores above (P1) before the load of the peer's
        // waiting word; pairs with W1, the receiver's fence between setting its waiting word
        // and re-reading the producer indices (see `Receiver::arm_wait`).
        fence(Ordering::SeqCst);
        let word = self.channel.peer_waiting_word();
        if word & WAITING == 0 || word == self.rung_for {
            return;
        }
        self.rung_for = word;
        match doorbell.notify() {
            Ok(()) => self.stats.notifications += 1,
            Err(error) => {
                self.stats.notify_errors += 1;
                log::debug!("pcie-channel: {error}");
            }
        }
    }

    /// Writes one message without publishing it.
    fn write(&mut self, flow: u32, data: &[u8]) -> Result<(), ChannelError> {
        self.channel.health()?;
        self.write_healthy(flow, data)
    }

    /// [`Self::write`] once the channel's health has been checked.
    #[inline]
    fn write_healthy(&mut self, flow: u32, data: &[u8]) -> Result<(), ChannelError> {
        if data.len() > self.max_message {
            return Err(ChannelError::TooLarge {
                len: data.len(),
                max: self.max_message,
            });
        }
        if data.len() <= self.slot_bytes {
            return self.write_one(flow, data);
        }
        // Slots are a power of two: a shift, not a division.
        let segments = data.len().saturating_add(self.slot_bytes - 1) >> self.slot_shift;
        {
            let mut plan = [Placement::default(); MAX_SEGMENTS];
            self.write_planned(flow, data, &mut plan[..segments])
        }
    }

    /// The common case, kept short: a message that fits one slot.
    #[inline]
    fn write_one(&mut self, flow: u32, data: &[u8]) -> Result<(), ChannelError> {
        let Placement { ring, position } = self.claim_one()?;
        let seq = self.next_seq(flow);
        let Some(target) = self.rings[usize::from(ring)].as_ref() else {
            unreachable!("claim_one returns a ring below the count")
        };
        // SAFETY: the slot of a claimed, unpublished position is ours and `slot_bytes` long;
        // `data` is at most `slot_bytes` (checked by the caller).
        unsafe { copy_to_shared(data, target.memory.slot(position)) };
        Descriptor::whole(flow, seq, data.len() as u16).store(target.memory.descriptor(position));
        self.count_message(data.len(), 1);
        Ok(())
    }

    /// Claims a position for a one-segment message: on the current engine while its cached
    /// credits last (no shared memory read), else on the next engine that has credit.
    #[inline]
    fn claim_one(&mut self) -> Result<Placement, ChannelError> {
        let cursor = self.cursor;
        if let Some(Some(ring)) = self.rings.get_mut(cursor) {
            if let Some(position) = ring.index.claim() {
                return Ok(Placement {
                    ring: cursor as u8,
                    position,
                });
            }
        }
        let mut plan = [Placement::default(); 1];
        self.plan(&mut plan)?;
        Ok(plan[0])
    }

    /// The next sequence number of `flow`'s lane.
    #[inline]
    fn next_seq(&self, flow: u32) -> u32 {
        let lane = (flow & self.lane_mask) as usize;
        if self.exclusive {
            self.channel.next_seq_exclusive(lane)
        } else {
            self.channel.next_seq(lane)
        }
    }

    #[inline]
    fn count_message(&mut self, len: usize, segments: u32) {
        self.unpublished += segments;
        self.stats.messages += 1;
        self.stats.bytes += len as u64;
        self.stats.segments += u64::from(segments);
    }

    /// Claims positions for every segment of `data` (one per entry of `plan`), fills them and
    /// stamps the descriptors.
    fn write_planned(
        &mut self,
        flow: u32,
        data: &[u8],
        plan: &mut [Placement],
    ) -> Result<(), ChannelError> {
        let segments = plan.len();
        self.plan(plan)?;
        let seq = self.next_seq(flow);
        self.heads |= 1 << plan[0].ring;
        for (i, place) in plan.iter().enumerate() {
            let start = i * self.slot_bytes;
            let chunk = &data[start..data.len().min(start + self.slot_bytes)];
            let (next_slot, next_engine) = match plan.get(i + 1) {
                Some(next) => {
                    let next_ring = self.ring(next.ring as usize);
                    (next_ring.memory.slot_index(next.position), next_ring.engine)
                }
                None => (0, 0),
            };
            let ring = self.ring(place.ring as usize);
            // SAFETY: the slot of a claimed position is ours until published, `slot_bytes` long,
            // and `chunk` is at most `slot_bytes`.
            unsafe { copy_to_shared(chunk, ring.memory.slot(place.position)) };
            Descriptor {
                flow,
                seq,
                len: chunk.len() as u16,
                segment: i as u8,
                segments: segments as u8,
                next_slot,
                next_engine,
                reserved: 0,
            }
            .store(ring.memory.descriptor(place.position));
        }
        self.count_message(data.len(), segments as u32);
        Ok(())
    }

    /// Claims ring positions for `plan.len()` segments, all or nothing. One segment goes to the
    /// current engine (the next one with credit if it has none); several are spread
    /// round-robin over the owned engines from the current one.
    fn plan(&mut self, plan: &mut [Placement]) -> Result<(), ChannelError> {
        if let [place] = plan {
            let mut ring = self.cursor;
            for _ in 0..self.count {
                let credits = self.ring(ring).index.credits(1);
                if credits.map_err(|e| self.ring_failure(ring, e))? > 0 {
                    self.cursor = ring;
                    *place = self.claim(ring);
                    return Ok(());
                }
                ring = wrap_next(ring, self.count);
            }
            self.stats.would_block += 1;
            return Err(ChannelError::WouldBlock);
        }
        let mut credits = self.credits_for(plan.len())?;
        let mut ring = self.cursor;
        for place in plan.iter_mut() {
            while credits[ring] == 0 {
                ring = wrap_next(ring, self.count);
            }
            credits[ring] -= 1;
            *place = self.claim(ring);
            ring = wrap_next(ring, self.count);
        }
        Ok(())
    }

    /// The credit of each ring for a message of `want` segments spread round-robin from the
    /// cursor, all or nothing. Each ring is asked for its own share only, so a ring whose cached
    /// credit covers it is not read again (P2); only when some ring falls short are the others
    /// read too, to place the rest there.
    fn credits_for(&mut self, want: usize) -> Result<[u32; MAX_ENGINES], ChannelError> {
        let count = self.count.max(1);
        // The k-th ring from the cursor takes segments k, k + count, ...
        let share = |k: usize| (want / count + usize::from(k < want % count)) as u32;
        let mut credits = [0u32; MAX_ENGINES];
        let mut total = 0usize;
        let mut ring = self.cursor;
        for k in 0..self.count {
            let answer = self.ring(ring).index.credits(share(k));
            credits[ring] = answer.map_err(|e| self.ring_failure(ring, e))?;
            total += credits[ring] as usize;
            ring = wrap_next(ring, self.count);
        }
        if total < want {
            // Rings that answered from their cache (at least their share) may have more.
            total = 0;
            let mut ring = self.cursor;
            for k in 0..self.count {
                if credits[ring] >= share(k) {
                    let answer = self.ring(ring).index.refresh_credits();
                    credits[ring] = answer.map_err(|e| self.ring_failure(ring, e))?;
                }
                total += credits[ring] as usize;
                ring = wrap_next(ring, self.count);
            }
        }
        if total < want {
            self.stats.would_block += 1;
            return Err(ChannelError::WouldBlock);
        }
        Ok(credits)
    }

    /// Claims the next position of `ring`, which has credit.
    fn claim(&mut self, ring: usize) -> Placement {
        match self.ring(ring).index.claim() {
            Some(position) => Placement {
                ring: ring as u8,
                position,
            },
            None => unreachable!("the caller saw credit on this ring"),
        }
    }
}

/// The order in which [`Sender::publish`] stores the producer indices of rings `0..count`, as
/// two sets of rings (bit = index in `Sender::rings`), each published in ascending order: the
/// rings without a head (bit clear in `heads`) first, then those with one.
#[inline(always)]
fn publication_order(count: usize, heads: u16) -> [u16; 2] {
    let rings = EngineSet::first(count).mask();
    [rings & !heads, rings & heads]
}

impl Drop for Sender<'_> {
    fn drop(&mut self) {
        self.publish();
        self.channel.unclaim_sender(self.engines);
    }
}

/// One reserved slot: write the message into [`Reservation::buffer`], then commit.
pub struct Reservation<'s, 'c> {
    /// `None` once committed or queued.
    sender: Option<&'s mut Sender<'c>>,
    flow: u32,
    ring: usize,
    position: u32,
    len: usize,
}

impl<'s, 'c> Reservation<'s, 'c> {
    /// The reserved bytes, in the shared slot.
    ///
    /// The slot is shared memory the peer can see; it only reads it after the commit.
    pub fn buffer(&mut self) -> &mut [u8] {
        let Some(sender) = self.sender.as_mut() else {
            unreachable!("the sender is taken only by `finish`, which consumes the reservation")
        };
        let slot = sender.ring(self.ring).memory.slot(self.position);
        // SAFETY: the slot of a claimed, unpublished position belongs to this sender alone, is
        // `slot_bytes >= len` long, and the returned borrow ends before the commit or drop.
        unsafe { core::slice::from_raw_parts_mut(slot, self.len) }
    }

    /// Publishes the first `len` bytes of the buffer as one message.
    pub fn commit(self, len: usize) -> Result<(), ChannelError> {
        let (sender, ring) = self.finish(len)?;
        sender.publish_ring(ring);
        Ok(())
    }

    /// Writes the message's descriptor (the first `len` bytes of the buffer) without publishing
    /// it: it becomes visible at the next [`Sender::publish`] or publishing call, so a batch of
    /// reservations costs one Release store.
    pub fn queue(self, len: usize) -> Result<(), ChannelError> {
        self.finish(len).map(|_| ())
    }

    /// Takes the sequence number and stores the descriptor; returns the sender and the ring.
    #[inline]
    fn finish(self, len: usize) -> Result<(&'s mut Sender<'c>, usize), ChannelError> {
        if len > self.len {
            return Err(ChannelError::TooLarge { len, max: self.len });
        }
        let mut this = self;
        let (flow, position, ring) = (this.flow, this.position, this.ring);
        let Some(sender) = this.sender.take() else {
            unreachable!("only `finish` takes the sender, and it consumes the reservation")
        };
        let seq = sender.next_seq(flow);
        let target = sender.ring(ring);
        Descriptor::whole(flow, seq, len as u16).store(target.memory.descriptor(position));
        sender.count_message(len, 1);
        Ok((sender, ring))
    }
}

impl Drop for Reservation<'_, '_> {
    fn drop(&mut self) {
        // Abandoned (not committed or queued): give the position back (nothing was claimed
        // after it, we hold the sender).
        if let Some(sender) = self.sender.take() {
            sender.ring(self.ring).index.unclaim();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Geometry;
    use crate::Loopback;

    const GEOMETRY: Geometry = Geometry {
        engines: 4,
        ring_entries: 4,
        slot_bytes: 64,
        lanes: 4,
    };

    #[test]
    fn rings_holding_a_head_are_published_last() {
        let order = |count, heads| {
            let sets = publication_order(count, heads);
            let ascending = |set: u16| (0..16).filter(move |ring| set >> ring & 1 != 0);
            sets.into_iter().flat_map(ascending).collect::<Vec<_>>()
        };
        assert_eq!(order(4, 0), [0, 1, 2, 3]);
        assert_eq!(order(4, 0b0001), [1, 2, 3, 0]);
        assert_eq!(order(4, 0b0101), [1, 3, 0, 2]);
        assert_eq!(order(1, 0b0001), [0]);
    }

    #[test]
    fn a_message_of_several_segments_marks_the_ring_of_its_head() {
        let lo = Loopback::new(GEOMETRY).unwrap();
        let mut tx = lo.host().sender(EngineSet::first(4)).unwrap();
        tx.queue(1, &[1; 64]).unwrap();
        assert_eq!(
            tx.heads, 0,
            "a one-segment message has no chain to wait for"
        );
        tx.queue(1, &[2; 200]).unwrap();
        assert_eq!(tx.heads, 0b0001, "four segments from the current engine, 0");
        tx.publish();
        assert_eq!(tx.heads, 0);
        // Engine 0 holds the first message and a segment of the second: fill it, so that the
        // next one-segment message moves the cursor on.
        while tx.ring(0).index.cached_credits() > 0 {
            tx.queue(2, &[3; 8]).unwrap();
        }
        tx.queue(2, &[4; 8]).unwrap();
        assert_eq!(
            tx.cursor, 1,
            "the next one-segment message went to engine 1"
        );
        tx.queue(3, &[5; 100]).unwrap();
        assert_eq!(tx.heads, 0b0010, "the head sits on the current engine, 1");
        assert_eq!(
            publication_order(tx.count, tx.heads),
            [0b1101, 0b0010],
            "and its ring is published last"
        );
    }

    #[test]
    fn each_ring_is_asked_for_its_own_share_of_a_message() {
        let lo = Loopback::new(GEOMETRY).unwrap();
        let mut tx = lo.host().sender(EngineSet::first(4)).unwrap();
        let mut rx = lo.nic().receiver().unwrap();
        // Three messages of four segments: one entry of each ring apiece.
        for _ in 0..3 {
            tx.send(1, &[7; 256]).unwrap();
        }
        assert_eq!(rx.poll(8, |_| {}), Ok(3));
        // Each ring has one credit cached, its share of the next message: its consumer index
        // (which now says four) is not read again.
        tx.send(1, &[7; 256]).unwrap();
        for ring in 0..4 {
            assert_eq!(tx.ring(ring).index.cached_credits(), 0, "ring {ring}");
        }
        // A ring out of credit is read again.
        tx.send(1, &[7; 256]).unwrap();
        for ring in 0..4 {
            assert_eq!(tx.ring(ring).index.cached_credits(), 2, "ring {ring}");
        }
    }
}
