//! The frame buffers: a fixed pool allocated at start-up, lent out by owning tokens.
//!
//! A [`FrameToken`] is the only handle to its buffer: it is neither `Clone` nor `Copy`, only
//! [`FramePool::take`] makes one, and [`FramePool::give`] consumes it. Whoever holds the token
//! may read and write the buffer; passing the token through a queue passes the buffer, and the
//! queue's lock orders the writes before the reads on the other core. This is the one place
//! the runtime shares memory without a lock per access.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::UnsafeCell;

/// The largest frame a buffer receives: the largest Ethernet frame (1518 with a VLAN tag, no
/// FCS), rounded up to whole cache lines. Ports receive into the first `FRAME_CAPACITY` bytes
/// of a buffer.
pub const FRAME_CAPACITY: usize = 1536;
/// Bytes in one frame buffer: a received frame and, after it, the largest reply a service can
/// make (so that a reply is built in its request's buffer: [`reply_offset`]).
pub const BUFFER_CAPACITY: usize = 2 * FRAME_CAPACITY;

/// Where the reply to a request frame of `len` bytes (at most [`FRAME_CAPACITY`]) starts in the
/// request's buffer: at the first cache line after the request, so that both fit, whole, in
/// one buffer (a reply is at most 1514 bytes, and `FRAME_CAPACITY + 1514 <= BUFFER_CAPACITY`).
#[inline]
pub const fn reply_offset(len: usize) -> usize {
    let len = if len < FRAME_CAPACITY {
        len
    } else {
        FRAME_CAPACITY
    };
    len.next_multiple_of(64)
}

/// The exclusive right to one buffer of the pool.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a token dropped without FramePool::give loses its buffer"]
pub struct FrameToken {
    index: u16,
}

#[repr(align(64))]
struct Slot(UnsafeCell<[u8; BUFFER_CAPACITY]>);

// SAFETY: a slot's bytes are only reached through `FramePool::bytes{,_mut}`, which need the
// slot's unique `FrameToken`; tokens move between cores through locked queues, which order the
// previous holder's accesses before the next holder's.
unsafe impl Sync for Slot {}

/// A fixed set of frame buffers and the list of free ones.
pub struct FramePool {
    slots: Box<[Slot]>,
    free: spin::Mutex<Vec<u16>>,
}

impl FramePool {
    /// Allocates `frames` buffers (at most 65536); this is the pool's only allocation.
    pub fn new(frames: usize) -> Self {
        let frames = frames.min(usize::from(u16::MAX) + 1);
        let slots = (0..frames)
            .map(|_| Slot(UnsafeCell::new([0; BUFFER_CAPACITY])))
            .collect();
        let free = (0..frames).filter_map(|i| u16::try_from(i).ok()).collect();
        FramePool {
            slots,
            free: spin::Mutex::new(free),
        }
    }

    /// Buffers in the pool.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Buffers not lent out right now.
    pub fn available(&self) -> usize {
        self.free.lock().len()
    }

    /// Lends up to `count` buffers, appending their tokens to `into` (as many as fit);
    /// returns how many it lent.
    pub fn take<const N: usize>(
        &self,
        count: usize,
        into: &mut heapless::Vec<FrameToken, N>,
    ) -> usize {
        let want = count.min(N - into.len());
        let mut free = self.free.lock();
        let mut lent = 0;
        while lent < want {
            let Some(index) = free.pop() else { break };
            // Cannot fail: `want` leaves room.
            let _ = into.push(FrameToken { index });
            lent += 1;
        }
        lent
    }

    /// Takes back every token in `tokens`.
    pub fn give_all<const N: usize>(&self, tokens: &mut heapless::Vec<FrameToken, N>) {
        if tokens.is_empty() {
            return;
        }
        let mut free = self.free.lock();
        // `free` was allocated with room for every buffer, so pushing never reallocates.
        while let Some(token) = tokens.pop() {
            free.push(token.index);
        }
    }

    /// Takes back one token.
    pub fn give(&self, token: FrameToken) {
        self.free.lock().push(token.index);
    }

    /// The buffer `token` stands for.
    #[inline]
    pub fn bytes<'a>(&'a self, token: &'a FrameToken) -> &'a [u8; BUFFER_CAPACITY] {
        let slot = &self.slots[usize::from(token.index)];
        // SAFETY: the caller holds the slot's only token, so no `&mut` to these bytes exists
        // while this shared borrow (tied to the token's borrow) lives.
        unsafe { &*slot.0.get() }
    }

    /// The buffer `token` stands for, writable.
    #[inline]
    pub fn bytes_mut<'a>(&'a self, token: &'a mut FrameToken) -> &'a mut [u8; BUFFER_CAPACITY] {
        let slot = &self.slots[usize::from(token.index)];
        // SAFETY: the caller holds the slot's only token, mutably borrowed for as long as the
        // returned borrow lives, so no other reference to these bytes can exist meanwhile.
        unsafe { &mut *slot.0.get() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lends_each_buffer_once() {
        let pool = FramePool::new(8);
        let mut tokens: heapless::Vec<FrameToken, 16> = heapless::Vec::new();
        assert_eq!(pool.take(5, &mut tokens), 5);
        assert_eq!(pool.take(5, &mut tokens), 3);
        assert_eq!(pool.available(), 0);
        let mut indices: Vec<u16> = tokens.iter().map(|t| t.index).collect();
        indices.sort_unstable();
        assert_eq!(indices, [0, 1, 2, 3, 4, 5, 6, 7]);
        pool.give_all(&mut tokens);
        assert_eq!(pool.available(), 8);
        assert!(tokens.is_empty());
    }

    #[test]
    fn buffers_keep_what_the_holder_wrote() {
        let pool = FramePool::new(2);
        let mut tokens: heapless::Vec<FrameToken, 2> = heapless::Vec::new();
        pool.take(2, &mut tokens);
        let [mut a, mut b] = [tokens.pop().unwrap(), tokens.pop().unwrap()];
        pool.bytes_mut(&mut a)[0] = 1;
        pool.bytes_mut(&mut b)[0] = 2;
        assert_eq!(pool.bytes(&a)[0], 1);
        assert_eq!(pool.bytes(&b)[0], 2);
        pool.give(a);
        pool.give(b);
        assert_eq!(pool.available(), 2);
    }

    #[test]
    fn a_reply_fits_after_any_request() {
        // The largest reply: Ethernet, IPv4 and UDP headers and 1472 bytes of data.
        const LARGEST_REPLY: usize = 14 + 20 + 8 + 1472;
        for len in [0, 42, 60, 64, 65, 512, 1514, 1518, FRAME_CAPACITY, 4000] {
            let at = reply_offset(len);
            assert!(at >= len.min(FRAME_CAPACITY), "request of {len} bytes");
            assert_eq!(at % 64, 0);
            assert!(
                at + LARGEST_REPLY <= BUFFER_CAPACITY,
                "request of {len} bytes"
            );
        }
    }
}
