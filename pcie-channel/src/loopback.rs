//! `std` only: both sides of a channel in one process over heap memory, for tests, benchmarks
//! and the software NIC. [`Loopback::host`] and [`Loopback::nic`] are two independent views of
//! the same region, exactly as two processes would have.

use std::alloc::{self, Layout as AllocLayout};
use std::ptr::NonNull;

use crate::channel::Channel;
use crate::header::Role;
use crate::layout::{Geometry, GeometryError};

/// Page-aligned, zeroed heap memory standing in for a shared region.
#[derive(Debug)]
pub struct HeapRegion {
    base: NonNull<u8>,
    layout: AllocLayout,
}

// SAFETY: plain owned memory; the channels on it synchronise through atomics.
unsafe impl Send for HeapRegion {}
// SAFETY: `&HeapRegion` only hands out the raw base pointer.
unsafe impl Sync for HeapRegion {}

impl HeapRegion {
    /// `len` zeroed bytes (at least one page), aligned to 4096.
    pub fn new(len: usize) -> HeapRegion {
        let layout = match AllocLayout::from_size_align(len.max(4096), 4096) {
            Ok(layout) => layout,
            Err(_) => panic!("region of {len} bytes does not fit the address space"),
        };
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { alloc::alloc_zeroed(layout) };
        let Some(base) = NonNull::new(base) else {
            alloc::handle_alloc_error(layout)
        };
        HeapRegion { base, layout }
    }

    /// The base address.
    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// Bytes allocated.
    pub fn len(&self) -> usize {
        self.layout.size()
    }

    /// Always false (a region has at least one page).
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl Drop for HeapRegion {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { alloc::dealloc(self.base.as_ptr(), self.layout) }
    }
}

/// A host view and a NIC view of one channel in heap memory.
pub struct Loopback {
    // Field order is drop order: the channels go before their memory.
    host: Channel,
    nic: Channel,
    memory: HeapRegion,
}

impl Loopback {
    /// Creates a channel of `geometry` (host side) and attaches the NIC side to it.
    pub fn new(geometry: Geometry) -> Result<Loopback, GeometryError> {
        geometry.validate()?;
        let memory = HeapRegion::new(geometry.region_bytes());
        // SAFETY: `memory` is valid, page-aligned, `len` bytes, and outlives both channels
        // (dropped after them, see the field order); only these two channels access it.
        let host = unsafe { Channel::create_raw(memory.as_mut_ptr(), memory.len(), geometry) };
        let nic = host.and_then(|host| {
            // SAFETY: as above.
            unsafe { Channel::attach_raw(memory.as_mut_ptr(), memory.len(), Role::Nic) }
                .map(|nic| (host, nic))
        });
        match nic {
            Ok((host, nic)) => Ok(Loopback { host, nic, memory }),
            Err(error) => unreachable!("a validated geometry in fresh memory attaches: {error}"),
        }
    }

    /// The host's view.
    pub fn host(&self) -> &Channel {
        &self.host
    }

    /// The NIC's view.
    pub fn nic(&self) -> &Channel {
        &self.nic
    }

    /// The region's base, for tests that play a hostile peer by writing raw bytes.
    pub fn base(&self) -> *mut u8 {
        self.memory.as_mut_ptr()
    }

    /// The region's length.
    pub fn len(&self) -> usize {
        self.memory.len()
    }

    /// Always false.
    pub fn is_empty(&self) -> bool {
        false
    }
}
