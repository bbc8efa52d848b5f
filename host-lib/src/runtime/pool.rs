//! A pool of reusable byte buffers, so the request path allocates only while it warms up.

use crossbeam::queue::ArrayQueue;
use std::sync::atomic::{AtomicU64, Ordering};

/// Buffers of one capacity, shared by the endpoints and the workers.
#[derive(Debug)]
pub struct BufferPool {
    free: ArrayQueue<Vec<u8>>,
    capacity: usize,
    allocated: AtomicU64,
}

impl BufferPool {
    /// A pool keeping up to `keep` idle buffers of `capacity` bytes each.
    pub fn new(keep: usize, capacity: usize) -> BufferPool {
        BufferPool {
            free: ArrayQueue::new(keep.max(1)),
            capacity,
            allocated: AtomicU64::new(0),
        }
    }

    /// An empty buffer of at least the pool's capacity (allocated when the pool is empty).
    pub fn take(&self) -> Vec<u8> {
        match self.free.pop() {
            Some(mut buffer) => {
                buffer.clear();
                buffer
            }
            None => {
                self.allocated.fetch_add(1, Ordering::Relaxed);
                Vec::with_capacity(self.capacity)
            }
        }
    }

    /// Gives a buffer back (dropped when the pool already keeps enough).
    pub fn put(&self, buffer: Vec<u8>) {
        if buffer.capacity() >= self.capacity {
            let _ = self.free.push(buffer);
        }
    }

    /// Buffers allocated so far (flat after warm-up).
    pub fn allocated(&self) -> u64 {
        self.allocated.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_after_warm_up() {
        let pool = BufferPool::new(4, 128);
        let a = pool.take();
        let b = pool.take();
        pool.put(a);
        pool.put(b);
        for _ in 0..100 {
            let mut buffer = pool.take();
            buffer.extend_from_slice(&[1; 100]);
            pool.put(buffer);
        }
        assert_eq!(pool.allocated(), 2);
        assert!(pool.take().is_empty());
    }
}
