//! A channel over one region: creating or attaching it, handing out the endpoints (one sender
//! per engine set, one receiver per direction), the shared per-lane sequence counters, the
//! sticky `Failed` state, liveness and the boot configuration.

use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::boot_config::{self, BootConfigError};
use crate::header::{self, AttachError, Role, SideState};
use crate::layout::{Direction, Geometry, Layout, CACHE_LINE, MAX_ENGINES, MAX_LANES};
use crate::liveness::{PeerStatus, PeerWatch};
use crate::receive::Receiver;
use crate::region::Region;
use crate::ring::RingError;
use crate::send::Sender;

/// A set of engines of one direction, as a bit mask (bit `e` = engine `e`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EngineSet(u16);

impl EngineSet {
    /// No engine.
    pub const EMPTY: EngineSet = EngineSet(0);

    /// Engine `engine` alone (empty if `engine >= 16`).
    pub const fn single(engine: usize) -> EngineSet {
        if engine < MAX_ENGINES {
            EngineSet(1 << engine)
        } else {
            EngineSet(0)
        }
    }

    /// Engines `0..count` (all of them for `count >= 16`).
    pub const fn first(count: usize) -> EngineSet {
        if count >= MAX_ENGINES {
            EngineSet(u16::MAX)
        } else {
            EngineSet(((1u32 << count) - 1) as u16)
        }
    }

    /// The set whose bits are `mask`.
    pub const fn from_mask(mask: u16) -> EngineSet {
        EngineSet(mask)
    }

    /// The bit mask.
    pub const fn mask(self) -> u16 {
        self.0
    }

    /// Whether `engine` is in the set.
    pub const fn contains(self, engine: usize) -> bool {
        engine < MAX_ENGINES && self.0 & (1 << engine) != 0
    }

    /// Number of engines in the set.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The engines in the set, ascending.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..MAX_ENGINES).filter(move |&e| self.contains(e))
    }
}

/// What stopped a channel for good: the peer broke the index protocol of one ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Direction of the ring.
    pub direction: Direction,
    /// Engine of the ring.
    pub engine: u8,
    /// What was wrong.
    pub error: RingError,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} engine {}: {}",
            self.direction, self.engine, self.error
        )
    }
}

/// Errors of the send and receive paths. Small and `Copy`: the fast path counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelError {
    /// No credit: the peer has not released enough ring entries yet. Nothing was sent; retry.
    WouldBlock,
    /// The message can never be sent with this geometry and engine set.
    TooLarge {
        /// Bytes asked for.
        len: usize,
        /// Largest message this endpoint can send.
        max: usize,
    },
    /// The caller's buffer is smaller than the message (which stays queued).
    BufferTooSmall {
        /// Bytes of the message.
        len: usize,
    },
    /// The peer broke the protocol; the channel no longer moves data.
    Failed(Failure),
    /// The peer's heartbeat has not moved for longer than the configured timeout.
    Disconnected,
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelError::WouldBlock => f.write_str("channel full: no credit"),
            ChannelError::TooLarge { len, max } => {
                write!(f, "message of {len} bytes exceeds the {max}-byte maximum")
            }
            ChannelError::BufferTooSmall { len } => {
                write!(f, "buffer too small for a {len}-byte message")
            }
            ChannelError::Failed(failure) => write!(f, "channel failed: {failure}"),
            ChannelError::Disconnected => f.write_str("peer disconnected: heartbeat stalled"),
        }
    }
}

/// Why an endpoint could not be claimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimError {
    /// The set is empty or names an engine the geometry does not have.
    NoSuchEngine(EngineSet),
    /// An engine of the set already has a sender (the bits already taken).
    EngineBusy(EngineSet),
    /// This direction already has a receiver.
    ReceiverBusy,
}

impl fmt::Display for ClaimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClaimError::NoSuchEngine(set) => {
                write!(f, "engine set {:#06x} is empty or out of range", set.mask())
            }
            ClaimError::EngineBusy(set) => {
                write!(f, "engines {:#06x} already have a sender", set.mask())
            }
            ClaimError::ReceiverBusy => f.write_str("this direction already has a receiver"),
        }
    }
}

const RECEIVER_CLAIM: u32 = 1 << 16;

/// Bit 0 of a waiting word: the side's receiver may be asleep (docs/pcie-channel.md §4.4).
pub(crate) const WAITING: u32 = 1;

/// Sequence counters padded to their own cache lines in groups, so senders on different lanes
/// rarely share a line.
#[repr(align(64))]
struct LaneCounters([AtomicU32; MAX_LANES as usize]);

/// One side's view of a channel region.
///
/// `Channel` is `Sync`: share it between cores (a `static` on the NIC, a reference or an `Arc`
/// on the host) and claim endpoints from it. Each engine of the outbound direction has at most
/// one [`Sender`] at a time; the inbound direction has at most one [`Receiver`].
pub struct Channel {
    region: Region,
    layout: Layout,
    role: Role,
    /// Bits 0..16: engines with a sender; bit 16: the receiver.
    claims: AtomicU32,
    failed: AtomicBool,
    failure: core::cell::UnsafeCell<Option<Failure>>,
    failure_lock: AtomicBool,
    disconnected: AtomicBool,
    lanes: LaneCounters,
}

// SAFETY: the region is only accessed through atomics and raw copies (see `Region`); `failure`
// is written once under `failure_lock` before `failed` is set with Release and read only after
// `failed` is seen with Acquire.
unsafe impl Sync for Channel {}
// SAFETY: nothing in the channel is tied to a thread.
unsafe impl Send for Channel {}

const _: () = assert!(core::mem::align_of::<LaneCounters>() == CACHE_LINE);

impl Channel {
    /// Host side: initialises a channel of `geometry` in the memory at `base` (the whole
    /// header, every index and descriptor; slots are left as they are) and marks the host Ready.
    ///
    /// # Safety
    /// `base` must be valid for reads and writes of `len` bytes and 64-byte aligned for the whole
    /// life of the returned `Channel` and of every endpoint made from it. Inside this process
    /// nothing but other `Channel`s over the same memory may access those bytes while the
    /// channel lives; the peer may (through the protocol, or not: the channel bounds everything
    /// it reads).
    pub unsafe fn create_raw(
        base: *mut u8,
        len: usize,
        geometry: Geometry,
    ) -> Result<Channel, AttachError> {
        geometry.validate()?;
        let layout = Layout::of(geometry);
        // SAFETY: forwarded contract of this function.
        let region = unsafe { Self::checked_region(base, len, layout.total)? };
        header::initialise(&region, &layout);
        boot_config::clear(&region);
        Ok(Channel::new(region, layout, Role::Host))
    }

    /// Attaches to a channel the host initialised in the memory at `base`: validates magic,
    /// version, checksum, feature bits and geometry, then marks this side Ready. The NIC
    /// firmware calls this with its BAR address and length.
    ///
    /// # Safety
    /// As for [`Channel::create_raw`]: `base` valid for reads and writes of `len` bytes,
    /// 64-byte aligned, for the life of the channel and its endpoints, and not accessed by
    /// anything else in this address space meanwhile but other `Channel`s over it.
    pub unsafe fn attach_raw(
        base: *mut u8,
        len: usize,
        role: Role,
    ) -> Result<Channel, AttachError> {
        // SAFETY: forwarded contract of this function.
        let region = unsafe { Self::checked_region(base, len, 0)? };
        let layout = header::validate(&region)?;
        header::set_state(&region, role, SideState::Ready);
        Ok(Channel::new(region, layout, role))
    }

    /// # Safety
    /// `base` valid for `len` bytes (contract of the public constructors).
    unsafe fn checked_region(
        base: *mut u8,
        len: usize,
        need: usize,
    ) -> Result<Region, AttachError> {
        let Some(base) = NonNull::new(base) else {
            return Err(AttachError::Misaligned);
        };
        if !(base.as_ptr() as usize).is_multiple_of(CACHE_LINE) {
            return Err(AttachError::Misaligned);
        }
        if len < need {
            return Err(AttachError::TooSmall { len, need });
        }
        // SAFETY: forwarded contract of the caller.
        Ok(unsafe { Region::new(base, len) })
    }

    fn new(region: Region, layout: Layout, role: Role) -> Channel {
        Channel {
            region,
            layout,
            role,
            claims: AtomicU32::new(0),
            failed: AtomicBool::new(false),
            failure: core::cell::UnsafeCell::new(None),
            failure_lock: AtomicBool::new(false),
            disconnected: AtomicBool::new(false),
            lanes: LaneCounters([const { AtomicU32::new(0) }; MAX_LANES as usize]),
        }
    }

    /// The geometry read from (or written to) the header.
    pub fn geometry(&self) -> Geometry {
        self.layout.geometry
    }

    /// The byte layout of the region.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// This side.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The direction this side sends on.
    pub fn outbound(&self) -> Direction {
        match self.role {
            Role::Host => Direction::ToNic,
            Role::Nic => Direction::ToHost,
        }
    }

    /// The direction this side receives on.
    pub fn inbound(&self) -> Direction {
        match self.role {
            Role::Host => Direction::ToHost,
            Role::Nic => Direction::ToNic,
        }
    }

    /// Claims a sender on `engines` of the outbound direction.
    pub fn sender(&self, engines: EngineSet) -> Result<Sender<'_>, ClaimError> {
        let available = EngineSet::first(self.layout.geometry.engines as usize);
        if engines.is_empty() || engines.mask() & !available.mask() != 0 {
            return Err(ClaimError::NoSuchEngine(engines));
        }
        let bits = u32::from(engines.mask());
        let previous = self.claims.fetch_or(bits, Ordering::AcqRel);
        if previous & bits != 0 {
            // Undo only the bits we set.
            self.claims.fetch_and(!(bits & !previous), Ordering::AcqRel);
            return Err(ClaimError::EngineBusy(EngineSet::from_mask(
                (previous & bits) as u16,
            )));
        }
        Ok(Sender::new(self, engines))
    }

    /// Claims the receiver of the inbound direction.
    pub fn receiver(&self) -> Result<Receiver<'_>, ClaimError> {
        if self.claims.fetch_or(RECEIVER_CLAIM, Ordering::AcqRel) & RECEIVER_CLAIM != 0 {
            return Err(ClaimError::ReceiverBusy);
        }
        Ok(Receiver::new(self))
    }

    pub(crate) fn unclaim_sender(&self, engines: EngineSet) {
        self.claims
            .fetch_and(!u32::from(engines.mask()), Ordering::AcqRel);
    }

    pub(crate) fn unclaim_receiver(&self) {
        self.claims.fetch_and(!RECEIVER_CLAIM, Ordering::AcqRel);
    }

    pub(crate) fn region(&self) -> &Region {
        &self.region
    }

    /// Takes the next sequence number of `lane` (the caller bounds `lane` by the lane mask).
    #[inline]
    pub(crate) fn next_seq(&self, lane: usize) -> u32 {
        // Relaxed: the counter's own modification order is the lane's send order; publication
        // of the message is ordered by the ring's Release (P1).
        self.lanes.0[lane & (MAX_LANES as usize - 1)].fetch_add(1, Ordering::Relaxed)
    }

    /// Takes the next sequence number of `lane` for a sender that owns every engine of the
    /// direction. While it lives no other sender of the direction can be claimed, so nothing
    /// else touches the lane counters: a plain load and store replace the locked
    /// read-modify-write (which on x86 also drains the store buffer, stalling on the slot
    /// writes still waiting for their cache lines). The next claimant's `AcqRel` claim
    /// synchronises with this sender's `AcqRel` unclaim, so it sees every number taken here.
    #[inline]
    pub(crate) fn next_seq_exclusive(&self, lane: usize) -> u32 {
        let counter = &self.lanes.0[lane & (MAX_LANES as usize - 1)];
        let seq = counter.load(Ordering::Relaxed);
        counter.store(seq.wrapping_add(1), Ordering::Relaxed);
        seq
    }

    /// Records the first failure and stops the channel (sticky).
    #[cold]
    pub(crate) fn fail(&self, failure: Failure) -> ChannelError {
        if !self.failure_lock.swap(true, Ordering::Acquire) {
            // SAFETY: only the single winner of `failure_lock` writes, before `failed` is set;
            // readers read only after seeing `failed` (Acquire).
            unsafe { *self.failure.get() = Some(failure) };
            self.failed.store(true, Ordering::Release);
            header::set_state(&self.region, self.role, SideState::Failed);
            log::warn!("pcie-channel: {failure}; channel stopped");
        }
        ChannelError::Failed(self.failure().unwrap_or(failure))
    }

    /// Why the channel failed, if it did.
    pub fn failure(&self) -> Option<Failure> {
        if self.failed.load(Ordering::Acquire) {
            // SAFETY: `failed` is set (Acquire) only after the write in `fail` (Release).
            unsafe { *self.failure.get() }
        } else {
            None
        }
    }

    /// The error every endpoint returns before moving data, if any.
    #[inline]
    pub(crate) fn health(&self) -> Result<(), ChannelError> {
        if self.failed.load(Ordering::Relaxed) {
            return Err(match self.failure() {
                Some(failure) => ChannelError::Failed(failure),
                None => ChannelError::Disconnected,
            });
        }
        if self.disconnected.load(Ordering::Relaxed) {
            return Err(ChannelError::Disconnected);
        }
        Ok(())
    }

    /// Bumps this side's heartbeat counter; call it periodically (the NIC agent's tick, the
    /// host endpoint's poll loop).
    pub fn beat(&self) -> u64 {
        header::beat(&self.region, self.role)
    }

    /// The peer's heartbeat counter.
    pub fn peer_heartbeat(&self) -> u64 {
        header::heartbeat(&self.region, self.role.peer())
    }

    /// The peer's state word.
    pub fn peer_state(&self) -> SideState {
        header::state(&self.region, self.role.peer())
    }

    /// Whether the peer's receiver said it may be asleep on its doorbell (bit 0 of its waiting
    /// word, docs/pcie-channel.md §4.4). A sender with a doorbell reads it after each
    /// publication; tests and diagnostics may look too.
    pub fn peer_waiting(&self) -> bool {
        self.peer_waiting_word() & WAITING != 0
    }

    /// The peer's waiting word: bit 0 armed, bits 1.. the number of its waits.
    pub(crate) fn peer_waiting_word(&self) -> u32 {
        header::waiting(&self.region, self.role.peer())
    }

    /// This side's waiting word, as last stored.
    pub(crate) fn waiting_word(&self) -> u32 {
        header::waiting(&self.region, self.role)
    }

    /// Stores this side's waiting word (the receiver's wait does this).
    pub(crate) fn set_waiting_word(&self, word: u32) {
        header::set_waiting(&self.region, self.role, word);
    }

    /// Feeds the peer's heartbeat to `watch` at time `now` (any monotonic clock, in the units of
    /// the watch's timeout). When the heartbeat has not moved for the timeout, or the peer says
    /// it failed or stopped, every endpoint returns [`ChannelError::Disconnected`] until the
    /// heartbeat moves again.
    pub fn check_peer(&self, watch: &mut PeerWatch, now: u64) -> PeerStatus {
        let status = watch.observe(self.peer_heartbeat(), self.peer_state(), now);
        self.disconnected
            .store(!status.is_alive(), Ordering::Relaxed);
        status
    }

    /// Writes the boot configuration (host, before the NIC boots). Returns its generation.
    pub fn write_boot_config(&self, config: &[u8]) -> Result<u32, BootConfigError> {
        boot_config::write(&self.region, config)
    }

    /// Copies the boot configuration into `out` and checks its framing and checksum; returns its
    /// length.
    pub fn read_boot_config(&self, out: &mut [u8]) -> Result<usize, BootConfigError> {
        boot_config::read(&self.region, out)
    }

    /// Marks this side Stopped in its liveness line (also done on drop).
    pub fn detach(&self) {
        if !self.failed.load(Ordering::Relaxed) {
            header::set_state(&self.region, self.role, SideState::Stopped);
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.detach();
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("role", &self.role)
            .field("geometry", &self.layout.geometry)
            .field("base", &self.region.base())
            .field("len", &self.region.len())
            .field("failure", &self.failure())
            .finish()
    }
}
