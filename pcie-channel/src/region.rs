//! The raw shared region: a base pointer and a length, and typed references to the atomic
//! words, descriptor arrays and slots the layout places in it. All `unsafe` pointer arithmetic
//! of the crate lives here, behind bounds that the layout proves.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64};

use crate::layout::{Direction, Layout, CONSUMER_LINE, DESCRIPTOR_BYTES};

/// A region of shared memory: valid, 64-byte aligned, for reads and writes of `len` bytes for
/// as long as this value lives (the contract of [`Region::new`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Region {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the region is shared memory accessed only through atomics and raw-pointer copies;
// which side may write which byte is the protocol's business, not the type system's.
unsafe impl Send for Region {}
// SAFETY: as above; `&Region` hands out only atomics and raw pointers.
unsafe impl Sync for Region {}

impl Region {
    /// # Safety
    /// `base` must be valid for reads and writes of `len` bytes, 64-byte aligned, for the whole
    /// life of the returned value and of everything made from it; the memory may be written
    /// concurrently only by the peer through this protocol (or by a hostile peer: the crate never
    /// trusts what it reads, but Rust's rules require that nothing else in *this* process holds a
    /// reference to it).
    pub(crate) unsafe fn new(base: NonNull<u8>, len: usize) -> Region {
        Region { base, len }
    }

    /// Bytes in the region.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The base address.
    pub(crate) fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// The 32-bit atomic word at `offset`. Panics only on a caller bug (offset outside the
    /// region or misaligned), never on peer data: every offset comes from the layout.
    #[inline(always)]
    pub(crate) fn u32_at(&self, offset: usize) -> &AtomicU32 {
        assert!(offset.is_multiple_of(4) && offset + 4 <= self.len);
        // SAFETY: in bounds and 4-aligned (checked above, base is 64-aligned); the region is
        // valid for the life of `self` (contract of `new`); AtomicU32 has u32's layout and allows
        // shared mutation.
        unsafe { &*self.base.as_ptr().add(offset).cast::<AtomicU32>() }
    }

    /// The 64-bit atomic word at `offset` (see [`Self::u32_at`]).
    #[inline(always)]
    pub(crate) fn u64_at(&self, offset: usize) -> &AtomicU64 {
        assert!(offset.is_multiple_of(8) && offset + 8 <= self.len);
        // SAFETY: in bounds and 8-aligned (checked above); see `u32_at`.
        unsafe { &*self.base.as_ptr().add(offset).cast::<AtomicU64>() }
    }

    /// Raw pointer to `len` bytes at `offset`, checked against the region's length.
    #[inline(always)]
    pub(crate) fn bytes_at(&self, offset: usize, len: usize) -> *mut u8 {
        assert!(offset <= self.len && len <= self.len - offset);
        // SAFETY: `offset` is within the region (checked above), so the result stays inside the
        // same allocation.
        unsafe { self.base.as_ptr().add(offset) }
    }
}

/// The shared parts of one engine ring, resolved once from a validated layout.
#[derive(Clone, Copy)]
pub(crate) struct RingMemory<'a> {
    /// Producer index (its own cache line).
    pub producer: &'a AtomicU32,
    /// Consumer index (its own cache line).
    pub consumer: &'a AtomicU32,
    /// `ring_entries` descriptors.
    pub descriptors: &'a [[AtomicU32; 4]],
    /// First byte of `ring_entries` slots of `slot_bytes`.
    slots: *mut u8,
    slot_bytes: usize,
    mask: u32,
}

// SAFETY: `slots` points into a region that is `Sync` (shared memory accessed through atomics
// and raw copies) and valid for `'a`; the pointer carries no thread affinity.
unsafe impl Send for RingMemory<'_> {}
// SAFETY: as above; `&RingMemory` only hands out atomics and the raw slot pointer.
unsafe impl Sync for RingMemory<'_> {}

impl<'a> RingMemory<'a> {
    /// Resolves ring (direction, engine) of `layout` in `region`. `region` must be at least
    /// `layout.total` bytes and `engine` below the engine count (the channel checked both).
    pub(crate) fn new(
        region: &'a Region,
        layout: &Layout,
        direction: Direction,
        engine: usize,
    ) -> RingMemory<'a> {
        let g = layout.geometry;
        let entries = g.ring_entries as usize;
        let control = layout.control(direction, engine);
        let descriptors = region.bytes_at(
            layout.descriptor_array(direction, engine),
            entries * DESCRIPTOR_BYTES,
        );
        let slot_bytes = g.slot_bytes as usize;
        let slots = region.bytes_at(layout.slot_array(direction, engine), entries * slot_bytes);
        RingMemory {
            producer: region.u32_at(control),
            consumer: region.u32_at(control + CONSUMER_LINE),
            // SAFETY: `bytes_at` checked that `entries` descriptors of 16 bytes lie in the region;
            // the array is 64-aligned (layout) and `[AtomicU32; 4]` has the layout of 16 bytes
            // aligned to 4; atomics allow shared mutation; lifetime tied to `region`.
            descriptors: unsafe {
                core::slice::from_raw_parts(descriptors.cast::<[AtomicU32; 4]>(), entries)
            },
            slots,
            slot_bytes,
            mask: g.ring_entries - 1,
        }
    }

    /// Descriptor of ring position `position` (free-running; reduced modulo the depth).
    #[inline(always)]
    pub(crate) fn descriptor(&self, position: u32) -> &'a [AtomicU32; 4] {
        &self.descriptors[(position & self.mask) as usize]
    }

    /// Slot index (position modulo the depth) of ring position `position`.
    #[inline(always)]
    pub(crate) fn slot_index(&self, position: u32) -> u16 {
        (position & self.mask) as u16
    }

    /// Start of the slot of ring position `position` (free-running; reduced modulo the depth).
    /// The slot is `slot_bytes` long.
    #[inline(always)]
    pub(crate) fn slot(&self, position: u32) -> *mut u8 {
        let index = (position & self.mask) as usize;
        // SAFETY: index < ring_entries, and the slot array of ring_entries * slot_bytes bytes lies
        // in the region (checked in `new`).
        unsafe { self.slots.add(index * self.slot_bytes) }
    }
}

/// Asks the CPU to start fetching the cache line at `line` (a hint: no access, no fault, no
/// effect on what any load returns). The receiver issues it for a slot as soon as a new entry
/// is visible, so the slot's line travels from the producer's cache while the descriptor's does,
/// instead of after it.
#[inline(always)]
pub(crate) fn prefetch(line: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of the x86-64 baseline; a prefetch never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(line.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = line;
}

/// Copies `len` bytes out of shared memory at `src` into `dst`.
///
/// # Safety
/// `src` must be valid for reads of `dst.len()` bytes. The bytes may be changed concurrently by
/// a misbehaving peer; the copy then holds garbage but stays in bounds.
#[inline(always)]
pub(crate) unsafe fn copy_from_shared(src: *const u8, dst: &mut [u8]) {
    // SAFETY: caller guarantees `src` is readable for `dst.len()` bytes; `dst` is a distinct
    // local buffer, so the ranges do not overlap.
    unsafe { copy_bytes(src, dst.as_mut_ptr(), dst.len()) }
}

/// Copies `src` into shared memory at `dst`.
///
/// # Safety
/// `dst` must be valid for writes of `src.len()` bytes and not overlap `src`.
#[inline(always)]
pub(crate) unsafe fn copy_to_shared(src: &[u8], dst: *mut u8) {
    // SAFETY: caller guarantees `dst` is writable for `src.len()` bytes and disjoint from `src`.
    unsafe { copy_bytes(src.as_ptr(), dst, src.len()) }
}

/// `copy_nonoverlapping`, with messages of 16 to 64 bytes copied inline as two overlapping
/// 16- or 32-byte halves (the first and the last bytes) instead of through a `memcpy` call,
/// which costs more than the copy at these sizes.
///
/// # Safety
/// As `copy_nonoverlapping`: `src` readable and `dst` writable for `len` bytes, disjoint.
#[inline(always)]
unsafe fn copy_bytes(src: *const u8, dst: *mut u8, len: usize) {
    /// Copies the first and the last `N` bytes of `len` (`N <= len <= 2 * N`).
    ///
    /// # Safety
    /// As `copy_bytes`, with `N <= len`.
    #[inline(always)]
    unsafe fn halves<const N: usize>(src: *const u8, dst: *mut u8, len: usize) {
        // SAFETY: `N <= len`, so both `N`-byte ranges, at 0 and at `len - N`, lie within the
        // `len` bytes the caller vouches for; unaligned reads and writes of byte arrays.
        unsafe {
            let head = src.cast::<[u8; N]>().read_unaligned();
            let tail = src.add(len - N).cast::<[u8; N]>().read_unaligned();
            dst.cast::<[u8; N]>().write_unaligned(head);
            dst.add(len - N).cast::<[u8; N]>().write_unaligned(tail);
        }
    }
    // SAFETY: each branch meets `halves`' bound (`N <= len <= 2 * N`) or is the plain copy; the
    // caller's guarantee covers the rest.
    unsafe {
        match len {
            32..=64 => halves::<32>(src, dst, len),
            16..=31 => halves::<16>(src, dst, len),
            _ => core::ptr::copy_nonoverlapping(src, dst, len),
        }
    }
}
