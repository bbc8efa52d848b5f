//! The heap: every byte of RAM from the end of the image to the end of RAM (`heap_end` in
//! linker/<board>.ld). Services' state, page tables and virtio queues and buffers come from here;
//! nothing is allocated on the packet path after start-up.
#![cfg(target_os = "none")]

use core::ptr::addr_of_mut;

use linked_list_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

unsafe extern "C" {
    /// End of the image (aarch64-rt's image.ld), page aligned.
    static mut dma_region: u8;
    /// End of RAM (linker/<board>.ld).
    static mut heap_end: u8;
}

/// The address one past the end of RAM.
pub fn ram_end() -> usize {
    addr_of_mut!(heap_end) as usize
}

/// Gives the allocator the free RAM. Core 0 calls this once, before anything allocates.
pub fn init() {
    let start = addr_of_mut!(dma_region);
    let size = ram_end() - start as usize;
    // SAFETY: [dma_region, heap_end) is RAM the linker scripts leave to nobody else, mapped
    // normal memory by the initial map, and `init` runs once, on core 0, before other cores start.
    unsafe { HEAP.lock().init(start, size) };
}

/// Bytes still free on the heap.
pub fn free() -> usize {
    HEAP.lock().free()
}
