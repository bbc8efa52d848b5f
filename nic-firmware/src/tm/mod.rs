//! The traffic manager: frames from the ports go to per-core queues, and each core runs the
//! frames of its queue to completion.
//!
//! Layers: [`pool`] lends the frame buffers, [`steering`] picks a core, this module keeps the
//! per-core queues (bounded `heapless` deques, one lock each, taken once per burst:
//! [`TrafficManager::dispatch_burst`], [`TrafficManager::pull`]) and [`depth`] samples how full
//! they are over time. The manager is work-conserving: round-robin steering skips full queues,
//! an idle core takes frames from the busiest queue ([`TrafficManager::steal`]), and under
//! flow-affine steering a full queue holds its frames back at the port (no drop) until it
//! drains, unless another core runs short of work meanwhile: then frames are received behind
//! the held ones and those for a full core that find no room are dropped
//! ([`TrafficManager::dispatch_behind`]), so that one hot flow does not starve the others.

pub mod depth;
pub mod pool;
pub mod steering;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use self::depth::{DepthMonitor, DepthSummary};
use self::pool::FrameToken;
use self::steering::Steering;

/// Frames one core's queue holds.
pub const QUEUE_DEPTH: usize = 64;
/// Most frames moved per lock taken (receive, dequeue, steal).
pub const BURST: usize = 32;

/// A received frame waiting in a core queue.
#[derive(Debug)]
pub struct Descriptor {
    /// Its buffer.
    pub frame: FrameToken,
    /// Its length in bytes.
    pub len: u16,
    /// The port it arrived on.
    pub port: u8,
}

#[repr(align(128))]
struct CoreQueue {
    frames: spin::Mutex<heapless::Deque<Descriptor, QUEUE_DEPTH>>,
    /// The deque's length, readable without the lock (for steering and sampling).
    depth: AtomicUsize,
}

/// The per-core queues and the steering policy.
pub struct TrafficManager {
    steering: Steering,
    queues: Box<[CoreQueue]>,
    cursor: AtomicUsize,
    monitor: spin::Mutex<DepthMonitor>,
}

impl TrafficManager {
    /// Queues for `cores` cores (at least one), sampling depth every `sample_period_ns`.
    pub fn new(steering: Steering, cores: usize, sample_period_ns: u64) -> Self {
        let queues: Vec<CoreQueue> = (0..cores.max(1))
            .map(|_| CoreQueue {
                frames: spin::Mutex::new(heapless::Deque::new()),
                depth: AtomicUsize::new(0),
            })
            .collect();
        TrafficManager {
            steering,
            queues: queues.into_boxed_slice(),
            cursor: AtomicUsize::new(0),
            monitor: spin::Mutex::new(DepthMonitor::new(sample_period_ns)),
        }
    }

    /// The steering policy.
    pub fn steering(&self) -> Steering {
        self.steering
    }

    /// Number of core queues.
    pub fn cores(&self) -> usize {
        self.queues.len()
    }

    /// Steers `descriptor` to a core queue; returns the core, or the descriptor back when no
    /// allowed queue has room. `flow` is the frame's [`steering::flow_hash`] (only read under
    /// flow-affine steering: callers may pass 0 otherwise).
    pub fn dispatch(&self, flow: u32, descriptor: Descriptor) -> Result<usize, Descriptor> {
        let cores = self.queues.len();
        match self.steering {
            Steering::FlowAffine => {
                let core = flow as usize % cores;
                self.push(core, descriptor).map(|()| core)
            }
            Steering::RoundRobin => {
                let start = self.cursor.fetch_add(1, Ordering::Relaxed);
                let mut descriptor = descriptor;
                for offset in 0..cores {
                    let core = (start + offset) % cores;
                    match self.push(core, descriptor) {
                        Ok(()) => return Ok(core),
                        Err(back) => descriptor = back,
                    }
                }
                Err(descriptor)
            }
        }
    }

    fn push(&self, core: usize, descriptor: Descriptor) -> Result<(), Descriptor> {
        let Some(queue) = self.queues.get(core) else {
            return Err(descriptor);
        };
        let mut frames = queue.frames.lock();
        frames.push_back(descriptor)?;
        queue.depth.store(frames.len(), Ordering::Relaxed);
        Ok(())
    }

    /// Steers a burst of received frames, oldest first, taking each core's queue lock once:
    /// round-robin gives the frames to the cores in turn and then hands what did not fit to any
    /// queue with room; flow-affine gives each frame to its flow's core (`flow` is the frame's
    /// [`steering::flow_hash`]) and keeps a frame whose queue is full, with every later frame
    /// of that core, so that no flow is reordered. What no queue took stays in `frames`, in
    /// order. Returns how many frames were steered.
    pub fn dispatch_burst<const N: usize>(
        &self,
        frames: &mut heapless::Deque<Descriptor, N>,
        flow: impl FnMut(&Descriptor) -> u32,
    ) -> usize {
        self.steer_burst(frames, flow, None::<Keeper<'_, 0>>)
    }

    /// [`TrafficManager::dispatch_burst`] for the core `keeper.0` that received the burst and
    /// is about to run a batch (`keeper.1`): while its own queue is empty, the frames steered
    /// to it go straight to the back of its batch (as many as the batch holds) instead of
    /// through its queue, one hop instead of two; the others go to the queues as before.
    /// Frames never overtake older frames of their core: once the core's queue holds any,
    /// its new frames go behind them. Returns how many frames were steered (kept or queued).
    pub fn dispatch_burst_keeping<const N: usize, const K: usize>(
        &self,
        frames: &mut heapless::Deque<Descriptor, N>,
        flow: impl FnMut(&Descriptor) -> u32,
        keeper: Keeper<'_, K>,
    ) -> usize {
        self.steer_burst(frames, flow, Some(keeper))
    }

    /// Whether every frame received now would go straight to `core`'s batch as far as the
    /// batch holds: it is the only core and its queue is empty (what
    /// [`TrafficManager::dispatch_burst_keeping`] would do with a burst, so the receiver may
    /// receive into the batch itself, as many frames as it has room for).
    #[inline]
    pub fn keeps_all(&self, core: usize) -> bool {
        self.queues.len() == 1 && core == 0 && self.depth(0) == 0
    }

    /// A core's queue takes frames straight into `keeper`'s batch if it is `keeper`'s, empty,
    /// and the batch has room: the frames `chosen` picks, in order, until the batch is full.
    fn keep<const K: usize>(
        &self,
        core: usize,
        keeper: &mut Option<Keeper<'_, K>>,
        held: &mut [Option<Descriptor>],
        chosen: impl Fn(&usize) -> bool,
    ) -> usize {
        match keeper {
            Some((me, batch)) if *me == core && self.depth(core) == 0 => {
                push_chosen(batch, held, chosen)
            }
            _ => 0,
        }
    }

    fn steer_burst<const N: usize, const K: usize>(
        &self,
        frames: &mut heapless::Deque<Descriptor, N>,
        mut flow: impl FnMut(&Descriptor) -> u32,
        mut keeper: Option<Keeper<'_, K>>,
    ) -> usize {
        let cores = self.queues.len();
        let count = frames.len();
        if count == 0 {
            return 0;
        }
        if let [queue] = &self.queues[..] {
            // One core: every policy gives it every frame, in order.
            let kept = match &mut keeper {
                Some((0, batch)) if self.depth(0) == 0 => move_oldest(frames, batch, count),
                _ => 0,
            };
            if frames.is_empty() {
                return kept;
            }
            let mut queued = queue.frames.lock();
            let moved = move_oldest(frames, &mut queued, count);
            queue.depth.store(queued.len(), Ordering::Relaxed);
            return kept + moved;
        }
        let mut held: [Option<Descriptor>; N] = [const { None }; N];
        let mut target = [0usize; N];
        let start = match self.steering {
            Steering::RoundRobin => self.cursor.fetch_add(count, Ordering::Relaxed) % cores,
            Steering::FlowAffine => 0,
        };
        let mut turn = start;
        for (slot, core) in held.iter_mut().zip(target.iter_mut()) {
            let Some(descriptor) = frames.pop_front() else {
                break;
            };
            *core = match self.steering {
                Steering::FlowAffine => flow(&descriptor) as usize % cores,
                Steering::RoundRobin => {
                    let core = turn;
                    turn = if turn + 1 == cores { 0 } else { turn + 1 };
                    core
                }
            };
            *slot = Some(descriptor);
        }
        let (held, target) = (&mut held[..count], &target[..count]);
        let mut moved = 0;
        for core in 0..cores {
            let mine = |i: &usize| target[*i] == core;
            if (0..count).any(|i| mine(&i)) {
                moved += self.keep(core, &mut keeper, held, mine);
                moved += self.push_held(core, held, mine);
            }
        }
        if self.steering == Steering::RoundRobin {
            for offset in 0..cores {
                if moved == count {
                    break;
                }
                moved += self.push_held((start + offset) % cores, held, |_| true);
            }
        }
        for descriptor in held.iter_mut().rev().filter_map(Option::take) {
            // Cannot fail: these came out of `frames`.
            let _ = frames.push_front(descriptor);
        }
        moved
    }

    /// Under flow-affine steering, whether some core's queue holds less than a burst: that
    /// core is about to run out of work, so frames held back for a full queue should not keep
    /// it from the port's later frames ([`TrafficManager::dispatch_behind`]). Always false
    /// under round-robin steering, where frames are held back only when every queue is full.
    pub fn core_short_of_work(&self) -> bool {
        self.steering == Steering::FlowAffine
            && self
                .queues
                .iter()
                .any(|queue| queue.depth.load(Ordering::Relaxed) < BURST)
    }

    /// Steers `fresh` frames, received behind the `held` ones (frames an earlier burst could
    /// not place), without letting any overtake an earlier frame for the same core: the held
    /// frames and then the fresh ones go through [`TrafficManager::dispatch_burst`] as one
    /// burst. Of what no queue takes (frames for full queues, in order) the oldest stay in
    /// `held`, as many as it holds, and the newest are left in `fresh`, refused: the caller
    /// drops them. Per-flow order holds: a refused frame is newer than every frame kept for its
    /// core. Returns how many frames were steered.
    pub fn dispatch_behind(
        &self,
        held: &mut heapless::Deque<Descriptor, BURST>,
        fresh: &mut heapless::Deque<Descriptor, BURST>,
        flow: impl FnMut(&Descriptor) -> u32,
    ) -> usize {
        let mut all: heapless::Deque<Descriptor, { 2 * BURST }> = heapless::Deque::new();
        move_oldest(held, &mut all, BURST);
        move_oldest(fresh, &mut all, BURST);
        let moved = self.dispatch_burst(&mut all, flow);
        move_oldest(&mut all, held, BURST);
        move_oldest(&mut all, fresh, BURST);
        moved
    }

    /// Pushes the held frames `chosen` picks, in order, onto `core`'s queue under one lock,
    /// until the queue is full; returns how many it pushed.
    fn push_held(
        &self,
        core: usize,
        held: &mut [Option<Descriptor>],
        chosen: impl Fn(&usize) -> bool,
    ) -> usize {
        let Some(queue) = self.queues.get(core) else {
            return 0;
        };
        let mut frames = queue.frames.lock();
        let pushed = push_chosen(&mut frames, held, chosen);
        queue.depth.store(frames.len(), Ordering::Relaxed);
        pushed
    }

    /// Moves up to `max` frames (at most [`BURST`], as many as fit) from `core`'s queue to the
    /// back of `out`, oldest first.
    pub fn pull<const N: usize>(
        &self,
        core: usize,
        out: &mut heapless::Deque<Descriptor, N>,
        max: usize,
    ) {
        let Some(queue) = self.queues.get(core) else {
            return;
        };
        if queue.depth.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut frames = queue.frames.lock();
        move_oldest(&mut frames, out, max.min(BURST));
        queue.depth.store(frames.len(), Ordering::Relaxed);
    }

    /// Work conservation for an idle `thief`: takes up to half of the deepest other queue
    /// (oldest frames first, at most `max`). Only under round-robin steering; flow-affine
    /// steering keeps each flow on its core so that it stays in order. Returns how many frames
    /// it took.
    pub fn steal<const N: usize>(
        &self,
        thief: usize,
        out: &mut heapless::Deque<Descriptor, N>,
        max: usize,
    ) -> usize {
        if self.steering != Steering::RoundRobin {
            return 0;
        }
        let victim = self
            .queues
            .iter()
            .enumerate()
            .filter(|&(core, _)| core != thief)
            .max_by_key(|(_, queue)| queue.depth.load(Ordering::Relaxed));
        let Some((_, queue)) = victim else { return 0 };
        if queue.depth.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        let Some(mut frames) = queue.frames.try_lock() else {
            return 0;
        };
        let half = frames.len().div_ceil(2).min(BURST).min(max);
        let taken = move_oldest(&mut frames, out, half);
        queue.depth.store(frames.len(), Ordering::Relaxed);
        taken
    }

    /// Frames waiting in `core`'s queue.
    pub fn depth(&self, core: usize) -> usize {
        self.queues
            .get(core)
            .map_or(0, |queue| queue.depth.load(Ordering::Relaxed))
    }

    /// Frames waiting in all queues.
    pub fn total_depth(&self) -> usize {
        self.queues
            .iter()
            .map(|queue| queue.depth.load(Ordering::Relaxed))
            .sum()
    }

    /// Takes a depth sample if one is due at `now_ns` (cheap when not; any core may call): the
    /// frames in the core queues plus `upstream()`, the frames waiting in front of them (at the
    /// ports: received and not yet steered, or not yet received), which is called only when a
    /// sample is taken. Without the upstream frames a core that takes one burst per poll and
    /// runs it at once would always see empty queues, however many frames its port holds.
    pub fn sample_depth(&self, now_ns: u64, upstream: impl FnOnce() -> usize) {
        if let Some(mut monitor) = self.monitor.try_lock() {
            if monitor.due(now_ns) {
                let total = self.total_depth().saturating_add(upstream());
                monitor.sample(now_ns, u32::try_from(total).unwrap_or(u32::MAX));
            }
        }
    }

    /// Ends the current depth interval and returns its summary.
    pub fn take_depth_interval(&self) -> DepthSummary {
        self.monitor.lock().take_interval()
    }

    /// Removes every queued descriptor (used when the runtime shuts down, to give the buffers
    /// back).
    pub fn drain_all(&self, mut each: impl FnMut(Descriptor)) {
        for queue in self.queues.iter() {
            let mut frames = queue.frames.lock();
            while let Some(descriptor) = frames.pop_front() {
                each(descriptor);
            }
            queue.depth.store(0, Ordering::Relaxed);
        }
    }
}

/// A core that steers a burst it received and the batch it is about to run
/// ([`TrafficManager::dispatch_burst_keeping`]).
pub type Keeper<'a, const K: usize> = (usize, &'a mut heapless::Deque<Descriptor, K>);

/// Pushes the held frames `chosen` picks, in order, onto the back of `to` until it is full;
/// returns how many it pushed.
fn push_chosen<const N: usize>(
    to: &mut heapless::Deque<Descriptor, N>,
    held: &mut [Option<Descriptor>],
    chosen: impl Fn(&usize) -> bool,
) -> usize {
    let mut pushed = 0;
    for (_, slot) in held.iter_mut().enumerate().filter(|(i, _)| chosen(i)) {
        let Some(descriptor) = slot.take() else {
            continue;
        };
        if let Err(back) = to.push_back(descriptor) {
            *slot = Some(back);
            break;
        }
        pushed += 1;
    }
    pushed
}

/// Moves up to `count` descriptors from the front of `from` to the back of `to` (as many as fit);
/// returns how many it moved.
fn move_oldest<const M: usize, const N: usize>(
    from: &mut heapless::Deque<Descriptor, M>,
    to: &mut heapless::Deque<Descriptor, N>,
    count: usize,
) -> usize {
    let count = count.min(N - to.len());
    let mut moved = 0;
    while moved < count {
        let Some(descriptor) = from.pop_front() else {
            break;
        };
        // Cannot fail: `count` leaves room.
        let _ = to.push_back(descriptor);
        moved += 1;
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::pool::FramePool;
    use super::*;
    use crate::wire::fixtures;

    fn descriptors(pool: &FramePool, n: usize) -> Vec<Descriptor> {
        let mut all = Vec::new();
        let mut tokens: heapless::Vec<FrameToken, 64> = heapless::Vec::new();
        while all.len() < n && pool.take(n - all.len(), &mut tokens) > 0 {
            while let Some(frame) = tokens.pop() {
                all.push(Descriptor {
                    frame,
                    len: 60,
                    port: 0,
                });
            }
        }
        all
    }

    /// A copy of the request fixture from another client port: another flow.
    fn flow_frame(client_port: u16) -> [u8; 51] {
        let mut frame = fixtures::UDP_REQUEST_FRAME;
        frame[34..36].copy_from_slice(&client_port.to_be_bytes());
        frame
    }

    #[test]
    fn round_robin_is_fair() {
        let pool = FramePool::new(120);
        let tm = TrafficManager::new(Steering::RoundRobin, 4, 1);
        for descriptor in descriptors(&pool, 120) {
            tm.dispatch(0, descriptor).unwrap();
        }
        for core in 0..4 {
            assert_eq!(tm.depth(core), 30);
        }
        assert_eq!(tm.total_depth(), 120);
    }

    #[test]
    fn round_robin_skips_full_queues_and_never_loses_a_frame() {
        let pool = FramePool::new(4 * QUEUE_DEPTH + 1);
        let tm = TrafficManager::new(Steering::RoundRobin, 4, 1);
        let mut all = descriptors(&pool, 4 * QUEUE_DEPTH + 1);
        let last = all.pop().unwrap();
        // Fill core 0 first by hand, then dispatch the rest: they go elsewhere.
        let mut it = all.into_iter();
        for descriptor in it.by_ref().take(QUEUE_DEPTH) {
            tm.push(0, descriptor).unwrap();
        }
        for descriptor in it {
            let core = tm.dispatch(0, descriptor).unwrap();
            assert_ne!(core, 0);
        }
        assert_eq!(tm.total_depth(), 4 * QUEUE_DEPTH);
        let back = tm.dispatch(0, last).unwrap_err();
        pool.give(back.frame);
    }

    #[test]
    fn flow_affine_keeps_a_flow_on_one_core_in_order() {
        let pool = FramePool::new(100);
        let tm = TrafficManager::new(Steering::FlowAffine, 4, 1);
        let mut cores_of_flow = [None; 10];
        let mut all = descriptors(&pool, 100).into_iter();
        // 10 rounds over 10 flows; each frame's length records (flow, sequence).
        for sequence in 0..10u16 {
            for flow in 0..10u16 {
                let mut descriptor = all.next().unwrap();
                descriptor.len = flow * 100 + sequence;
                let core = tm
                    .dispatch(steering::flow_hash(&flow_frame(40000 + flow)), descriptor)
                    .unwrap();
                let seen = cores_of_flow[usize::from(flow)].get_or_insert(core);
                assert_eq!(*seen, core, "flow {flow} moved");
            }
        }
        assert!(cores_of_flow.iter().flatten().collect::<Vec<_>>().len() == 10);
        let mut next_sequence = [0u16; 10];
        for core in 0..4 {
            let mut out: heapless::Deque<Descriptor, 256> = heapless::Deque::new();
            loop {
                let before = out.len();
                tm.pull(core, &mut out, BURST);
                if out.len() == before {
                    break;
                }
            }
            for descriptor in out {
                let (flow, sequence) = (descriptor.len / 100, descriptor.len % 100);
                assert_eq!(sequence, next_sequence[usize::from(flow)], "flow {flow}");
                next_sequence[usize::from(flow)] += 1;
                pool.give(descriptor.frame);
            }
        }
        assert_eq!(next_sequence, [10; 10]);
        // Flow-affine steering never steals: that would reorder a flow.
        assert_eq!(
            tm.steal(0, &mut heapless::Deque::<Descriptor, 8>::new(), BURST),
            0
        );
    }

    #[test]
    fn flow_affine_holds_back_when_the_flow_queue_is_full() {
        let pool = FramePool::new(QUEUE_DEPTH + 1);
        let tm = TrafficManager::new(Steering::FlowAffine, 2, 1);
        let mut all = descriptors(&pool, QUEUE_DEPTH + 1).into_iter();
        let flow = steering::flow_hash(&flow_frame(40000));
        for descriptor in all.by_ref().take(QUEUE_DEPTH) {
            tm.dispatch(flow, descriptor).unwrap();
        }
        let back = tm.dispatch(flow, all.next().unwrap());
        assert!(back.is_err());
    }

    /// `n` descriptors as one burst (their lengths number them).
    fn burst(pool: &FramePool, n: usize) -> heapless::Deque<Descriptor, BURST> {
        let mut out = heapless::Deque::new();
        for (i, mut descriptor) in descriptors(pool, n).into_iter().enumerate() {
            descriptor.len = i as u16;
            out.push_back(descriptor).unwrap();
        }
        out
    }

    fn drain_core(tm: &TrafficManager, core: usize, pool: &FramePool) -> Vec<u16> {
        let mut out: heapless::Deque<Descriptor, 256> = heapless::Deque::new();
        while tm.depth(core) > 0 {
            tm.pull(core, &mut out, BURST);
        }
        out.into_iter()
            .map(|d| {
                pool.give(d.frame);
                d.len
            })
            .collect()
    }

    #[test]
    fn bursts_are_dealt_round_robin_and_fill_every_queue() {
        let pool = FramePool::new(4 * QUEUE_DEPTH + BURST);
        let tm = TrafficManager::new(Steering::RoundRobin, 3, 1);
        let mut frames = burst(&pool, 30);
        assert_eq!(tm.dispatch_burst(&mut frames, |_| 0), 30);
        assert!(frames.is_empty());
        assert_eq!([tm.depth(0), tm.depth(1), tm.depth(2)], [10, 10, 10]);
        // The next burst starts where the last one left off: still even.
        let mut frames = burst(&pool, 2);
        tm.dispatch_burst(&mut frames, |_| 0);
        let mut frames = burst(&pool, 1);
        tm.dispatch_burst(&mut frames, |_| 0);
        assert_eq!([tm.depth(0), tm.depth(1), tm.depth(2)], [11, 11, 11]);
        // Full queues are skipped, and a burst no queue can take stays, in order.
        let mut total = tm.total_depth();
        while total < 3 * QUEUE_DEPTH {
            let mut frames = burst(&pool, BURST.min(3 * QUEUE_DEPTH - total));
            total += tm.dispatch_burst(&mut frames, |_| 0);
            assert!(frames.is_empty());
        }
        let mut frames = burst(&pool, 5);
        assert_eq!(tm.dispatch_burst(&mut frames, |_| 0), 0);
        let kept: Vec<u16> = frames.iter().map(|d| d.len).collect();
        assert_eq!(kept, [0, 1, 2, 3, 4]);
        for d in frames {
            pool.give(d.frame);
        }
        for core in 0..3 {
            drain_core(&tm, core, &pool);
        }
    }

    #[test]
    fn a_burst_keeps_each_flow_in_order_when_its_queue_fills() {
        let pool = FramePool::new(2 * QUEUE_DEPTH + BURST);
        let tm = TrafficManager::new(Steering::FlowAffine, 2, 1);
        // Fill core 1 to two short of full; even-numbered frames are flow 1 (core 1),
        // odd-numbered ones flow 0 (core 0).
        for descriptor in descriptors(&pool, QUEUE_DEPTH - 2) {
            tm.push(1, descriptor).unwrap();
        }
        let flow = |d: &Descriptor| u32::from(d.len.is_multiple_of(2));
        let mut frames = burst(&pool, 10);
        assert_eq!(tm.dispatch_burst(&mut frames, flow), 5 + 2);
        let kept: Vec<u16> = frames.iter().map(|d| d.len).collect();
        assert_eq!(kept, [4, 6, 8], "the rest of flow 1, in order");
        assert_eq!(drain_core(&tm, 0, &pool), [1, 3, 5, 7, 9]);
        let on_one = drain_core(&tm, 1, &pool);
        assert_eq!(on_one[QUEUE_DEPTH - 2..], [0, 2]);
        assert_eq!(tm.dispatch_burst(&mut frames, flow), 3);
        assert_eq!(drain_core(&tm, 1, &pool), [4, 6, 8]);
    }

    #[test]
    fn frames_behind_held_ones_never_overtake_them_and_the_newest_are_refused() {
        let pool = FramePool::new(2 * QUEUE_DEPTH + 2 * BURST);
        let tm = TrafficManager::new(Steering::FlowAffine, 2, 1);
        // Frames are numbered by their length; one in four is for core 1, the rest for core
        // 0, whose queue is full.
        let for_core_1 = |n: &u16| n % 4 == 1;
        let flow = |d: &Descriptor| u32::from(for_core_1(&d.len));
        for descriptor in descriptors(&pool, QUEUE_DEPTH) {
            tm.push(0, descriptor).unwrap();
        }
        assert!(tm.core_short_of_work(), "core 1 has nothing");
        let mut held = burst(&pool, BURST);
        assert_eq!(tm.dispatch_burst(&mut held, flow), BURST / 4);
        assert_eq!(held.len(), 3 * BURST / 4, "core 0's frames are held back");
        // A fresh burst numbered after the held one.
        let mut fresh = burst(&pool, BURST);
        for descriptor in fresh.iter_mut() {
            descriptor.len += BURST as u16;
        }
        assert_eq!(tm.dispatch_behind(&mut held, &mut fresh, flow), BURST / 4);
        // The held frames keep their place and fill up with the oldest fresh ones for core 0;
        // the newest are refused.
        let numbers = |frames: &heapless::Deque<Descriptor, BURST>| -> Vec<u16> {
            frames.iter().map(|d| d.len).collect()
        };
        let core_0: Vec<u16> = (0..2 * BURST as u16).filter(|n| !for_core_1(n)).collect();
        assert_eq!(numbers(&held), core_0[..BURST]);
        assert_eq!(numbers(&fresh), core_0[BURST..]);
        // Core 1 got every frame of its flows, in order.
        let core_1: Vec<u16> = (0..2 * BURST as u16).filter(for_core_1).collect();
        assert_eq!(drain_core(&tm, 1, &pool), core_1);
        // Once core 0 drains, its held frames go first, in order.
        drain_core(&tm, 0, &pool);
        assert_eq!(tm.dispatch_burst(&mut held, flow), BURST);
        assert_eq!(drain_core(&tm, 0, &pool), core_0[..BURST]);
        for d in fresh {
            pool.give(d.frame);
        }
        assert_eq!(pool.available(), pool.capacity());
    }

    #[test]
    fn the_receiving_core_keeps_its_share_while_its_queue_is_empty() {
        let numbers = |frames: &heapless::Deque<Descriptor, BURST>| -> Vec<u16> {
            frames.iter().map(|d| d.len).collect()
        };
        let pool = FramePool::new(4 * QUEUE_DEPTH);
        // One core: the whole burst goes to its batch, as far as the batch holds.
        let tm = TrafficManager::new(Steering::RoundRobin, 1, 1);
        let mut batch: heapless::Deque<Descriptor, BURST> = burst(&pool, 2);
        let mut frames = burst(&pool, BURST);
        assert_eq!(
            tm.dispatch_burst_keeping(&mut frames, |_| 0, (0, &mut batch)),
            BURST
        );
        assert_eq!(
            numbers(&batch)[2..],
            (0..BURST as u16 - 2).collect::<Vec<_>>()
        );
        assert_eq!(
            drain_core(&tm, 0, &pool),
            [BURST as u16 - 2, BURST as u16 - 1]
        );
        // Once its queue holds frames, new ones go behind them, not ahead into the batch.
        let give_back = |frames: &mut heapless::Deque<Descriptor, BURST>| {
            while let Some(descriptor) = frames.pop_front() {
                pool.give(descriptor.frame);
            }
        };
        give_back(&mut batch);
        tm.push(0, burst(&pool, 1).pop_front().unwrap()).unwrap();
        let mut frames = burst(&pool, 3);
        assert_eq!(
            tm.dispatch_burst_keeping(&mut frames, |_| 0, (0, &mut batch)),
            3
        );
        assert!(batch.is_empty());
        assert_eq!(drain_core(&tm, 0, &pool), [0, 0, 1, 2]);
        // Several cores, round-robin: the receiver's turns go to its batch, the others' to
        // their queues.
        let tm = TrafficManager::new(Steering::RoundRobin, 3, 1);
        let mut frames = burst(&pool, 9);
        assert_eq!(
            tm.dispatch_burst_keeping(&mut frames, |_| 0, (1, &mut batch)),
            9
        );
        assert_eq!(numbers(&batch), [1, 4, 7]);
        assert_eq!(drain_core(&tm, 0, &pool), [0, 3, 6]);
        assert_eq!(drain_core(&tm, 2, &pool), [2, 5, 8]);
        // Flow-affine: a flow of the receiver's whose queue holds frames stays behind them.
        let tm = TrafficManager::new(Steering::FlowAffine, 2, 1);
        let flow = |d: &Descriptor| u32::from(d.len.is_multiple_of(2));
        tm.push(1, burst(&pool, 1).pop_front().unwrap()).unwrap();
        let mut kept: heapless::Deque<Descriptor, BURST> = heapless::Deque::new();
        let mut frames = burst(&pool, 6);
        assert_eq!(
            tm.dispatch_burst_keeping(&mut frames, flow, (1, &mut kept)),
            6
        );
        assert!(kept.is_empty());
        assert_eq!(drain_core(&tm, 1, &pool), [0, 0, 2, 4]);
        let mut frames = burst(&pool, 6);
        assert_eq!(
            tm.dispatch_burst_keeping(&mut frames, flow, (1, &mut kept)),
            6
        );
        assert_eq!(numbers(&kept), [0, 2, 4]);
        assert_eq!(drain_core(&tm, 0, &pool), [1, 3, 5, 1, 3, 5]);
        give_back(&mut batch);
        give_back(&mut kept);
        assert_eq!(
            pool.available(),
            pool.capacity(),
            "every frame accounted for"
        );
    }

    #[test]
    fn only_a_lone_core_with_an_empty_queue_keeps_whole_bursts() {
        let pool = FramePool::new(1);
        let lone = TrafficManager::new(Steering::RoundRobin, 1, 1);
        assert!(lone.keeps_all(0));
        assert!(!lone.keeps_all(1), "no such core");
        lone.push(0, descriptors(&pool, 1).pop().unwrap()).unwrap();
        assert!(!lone.keeps_all(0), "new frames go behind the queued one");
        lone.drain_all(|d| pool.give(d.frame));
        for steering in [Steering::RoundRobin, Steering::FlowAffine] {
            assert!(!TrafficManager::new(steering, 2, 1).keeps_all(0));
        }
    }

    #[test]
    fn round_robin_never_asks_for_frames_behind_held_ones() {
        let pool = FramePool::new(QUEUE_DEPTH);
        let tm = TrafficManager::new(Steering::RoundRobin, 2, 1);
        assert!(!tm.core_short_of_work());
        let flow_affine = TrafficManager::new(Steering::FlowAffine, 2, 1);
        assert!(flow_affine.core_short_of_work());
        for core in 0..2 {
            for descriptor in descriptors(&pool, QUEUE_DEPTH / 2) {
                flow_affine.push(core, descriptor).unwrap();
            }
        }
        assert!(
            !flow_affine.core_short_of_work(),
            "both have a burst or more"
        );
        flow_affine.drain_all(|d| pool.give(d.frame));
    }

    #[test]
    fn an_idle_core_steals_half_of_the_busiest_queue() {
        let pool = FramePool::new(20);
        let tm = TrafficManager::new(Steering::RoundRobin, 3, 1);
        for descriptor in descriptors(&pool, 20) {
            tm.push(1, descriptor).unwrap();
        }
        let mut out: heapless::Deque<Descriptor, 64> = heapless::Deque::new();
        assert_eq!(tm.steal(0, &mut out, BURST), 10);
        assert_eq!(tm.depth(1), 10);
        assert_eq!(
            tm.steal(1, &mut out, BURST),
            0,
            "nothing to take from the empty others"
        );
    }

    #[test]
    fn depth_is_sampled_over_time() {
        let pool = FramePool::new(8);
        let tm = TrafficManager::new(Steering::RoundRobin, 2, 100);
        tm.sample_depth(0, || 0);
        for descriptor in descriptors(&pool, 8) {
            tm.dispatch(0, descriptor).unwrap();
        }
        tm.sample_depth(50, || unreachable!("not due yet: the ports are not asked"));
        tm.sample_depth(100, || 0);
        // Frames waiting at the ports count as well.
        tm.sample_depth(200, || 5);
        let summary = tm.take_depth_interval();
        assert_eq!((summary.samples, summary.min, summary.max), (3, 0, 13));
        let mut drained = 0;
        tm.drain_all(|d| {
            drained += 1;
            pool.give(d.frame);
        });
        assert_eq!(drained, 8);
        assert_eq!(pool.available(), 8);
    }
}
