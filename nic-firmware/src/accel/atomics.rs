//! Fetch-and-add on the LSE `LDADD` instruction: one atomic read-modify-write in the memory
//! system instead of a load-exclusive/store-exclusive retry loop.

use core::sync::atomic::{AtomicU64, Ordering};

use microservices::engines::FetchAddEngine;

use super::CpuFeatures;

/// Fetch-and-add units: `LDADD` where the core has LSE, the exclusive-monitor loop otherwise.
#[derive(Clone, Copy, Debug)]
pub struct LseAtomics {
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    lse: bool,
}

impl LseAtomics {
    /// Atomics for a core with `features`.
    pub const fn new(features: CpuFeatures) -> Self {
        Self {
            lse: features.lse(),
        }
    }
}

/// `LDADD`: adds `delta` to `*cell`, returns the previous value (relaxed ordering).
///
/// # Safety
/// The core must implement LSE (`ID_AA64ISAR0_EL1.Atomic >= 2`).
#[cfg(target_arch = "aarch64")]
#[target_feature(enable = "lse")]
unsafe fn ldadd(cell: &AtomicU64, delta: u64) -> u64 {
    let previous: u64;
    // SAFETY: `cell.as_ptr()` is valid and aligned for 8-byte atomic access for the lifetime
    // of the borrow, and `AtomicU64` allows concurrent atomic access to it; the caller
    // guarantees the instruction exists.
    unsafe {
        core::arch::asm!(
            "ldadd {delta}, {previous}, [{cell}]",
            delta = in(reg) delta,
            previous = lateout(reg) previous,
            cell = in(reg) cell.as_ptr(),
            options(nostack, preserves_flags)
        );
    }
    previous
}

impl FetchAddEngine for LseAtomics {
    fn fetch_add(&self, cell: &AtomicU64, delta: u64) -> u64 {
        #[cfg(target_arch = "aarch64")]
        if self.lse {
            // SAFETY: `lse` comes from a `CpuFeatures`, which only `CpuFeatures::detect` (whose
            // caller vouches for the core) can make with LSE on.
            return unsafe { ldadd(cell, delta) };
        }
        cell.fetch_add(delta, Ordering::Relaxed)
    }
}
