//! Assigning PCI memory BARs inside the host bridge's MMIO window: no firmware before us does it.
//!
//! The board splits its 32-bit PCI MMIO window in two: registers (non-prefetchable BARs) in the
//! low part, mapped as device memory, and prefetchable BARs (ivshmem's shared memory) in the high
//! part, mapped as normal cacheable memory. Each BAR is placed at the next address aligned to its
//! size, as PCI requires.

use core::fmt;

/// A range of bus addresses BARs are placed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
}

/// Why a BAR could not be placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarError {
    /// A BAR size that is not a power of two (a broken device).
    BadSize(u64),
    /// The window has no room left for a BAR of this size.
    WindowFull {
        /// The BAR's size.
        size: u64,
        /// What was left in the window.
        free: u64,
    },
}

impl fmt::Display for BarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BarError::BadSize(size) => write!(f, "BAR size {size:#x} is not a power of two"),
            BarError::WindowFull { size, free } => write!(
                f,
                "no room for a BAR of {size:#x} bytes ({free:#x} bytes left in the window)"
            ),
        }
    }
}

/// Hands out naturally aligned ranges of a window, first come first served.
#[derive(Clone, Copy, Debug)]
pub struct BarAllocator {
    window: Window,
    next: u64,
}

impl BarAllocator {
    /// An allocator over an empty window.
    pub const fn new(window: Window) -> Self {
        BarAllocator {
            window,
            next: window.start,
        }
    }

    /// Places a BAR of `size` bytes; returns its address.
    pub fn place(&mut self, size: u64) -> Result<u64, BarError> {
        if !size.is_power_of_two() {
            return Err(BarError::BadSize(size));
        }
        let full = BarError::WindowFull {
            size,
            free: self.window.end.saturating_sub(self.next),
        };
        let address = self.next.checked_next_multiple_of(size).ok_or(full)?;
        let end = address.checked_add(size).ok_or(full)?;
        if end > self.window.end {
            return Err(full);
        }
        self.next = end;
        Ok(address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Window = Window {
        start: 0x1000_0000,
        end: 0x2000_0000,
    };

    #[test]
    fn places_bars_naturally_aligned_in_order() {
        let mut bars = BarAllocator::new(WINDOW);
        assert_eq!(bars.place(0x100), Ok(0x1000_0000));
        assert_eq!(bars.place(0x40_0000), Ok(0x1040_0000));
        assert_eq!(bars.place(0x1000), Ok(0x1080_0000));
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let mut bars = BarAllocator::new(WINDOW);
        assert_eq!(bars.place(0x800_0000), Ok(0x1000_0000));
        assert_eq!(
            bars.place(0x1000_0000),
            Err(BarError::WindowFull {
                size: 0x1000_0000,
                free: 0x800_0000
            })
        );
        // What does fit still goes in after a refusal.
        assert_eq!(bars.place(0x400_0000), Ok(0x1800_0000));
        assert_eq!(bars.place(0), Err(BarError::BadSize(0)));
        assert_eq!(bars.place(0x3000), Err(BarError::BadSize(0x3000)));
    }

    #[test]
    fn never_wraps_around() {
        let mut bars = BarAllocator::new(Window {
            start: u64::MAX - 0xfff,
            end: u64::MAX,
        });
        assert!(matches!(
            bars.place(0x1_0000),
            Err(BarError::WindowFull { .. })
        ));
    }
}
