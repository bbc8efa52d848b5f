//! The DMA regions a virtio driver gave back, kept for the next driver instead of going back to
//! the heap: a port reset after start-up ([`virtio_net`](super::virtio_net)) drops its driver,
//! whose virtqueues give their pages back here, and starts a new one, whose virtqueues ask for
//! regions of the same sizes and get these. So a reset, which the packet path reaches, takes
//! nothing from the allocator (DESIGN.md: no allocation on the packet path after start-up).
//! Pure bookkeeping of addresses: the board's `Hal` does the zeroing and the heap calls.

/// A region of whole pages: where it starts and how many pages it spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Its first byte's address (page aligned; physical and virtual under the identity map).
    pub address: usize,
    /// Its length in pages.
    pub pages: usize,
}

/// At most `N` regions given back and not yet taken again.
#[derive(Default)]
pub struct Recycled<const N: usize> {
    regions: heapless::Vec<Region, N>,
}

impl<const N: usize> Recycled<N> {
    /// None kept yet.
    pub const fn new() -> Self {
        Recycled {
            regions: heapless::Vec::new(),
        }
    }

    /// A region of exactly `pages` pages given back earlier, if one is kept: it is the
    /// caller's now.
    pub fn take(&mut self, pages: usize) -> Option<Region> {
        let index = self
            .regions
            .iter()
            .position(|region| region.pages == pages)?;
        Some(self.regions.swap_remove(index))
    }

    /// Keeps `region` for a later [`Recycled::take`]; gives it back when `N` are kept already
    /// (the caller frees it).
    pub fn keep(&mut self, region: Region) -> Result<(), Region> {
        self.regions.push(region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_comes_back_only_for_its_own_size() {
        let mut recycled: Recycled<3> = Recycled::new();
        assert_eq!(recycled.take(1), None, "nothing kept yet");
        let one = Region {
            address: 0x1000,
            pages: 1,
        };
        let two = Region {
            address: 0x4000,
            pages: 2,
        };
        assert_eq!(recycled.keep(one), Ok(()));
        assert_eq!(recycled.keep(two), Ok(()));
        assert_eq!(recycled.take(3), None);
        assert_eq!(recycled.take(2), Some(two));
        assert_eq!(recycled.take(2), None, "taken once only");
        assert_eq!(recycled.take(1), Some(one));
        assert_eq!(recycled.take(1), None);
    }

    #[test]
    fn a_reset_takes_back_what_the_dropped_driver_gave() {
        // A virtio-net driver of 64-descriptor queues: per queue one page for the descriptors
        // and the available ring, one for the used ring; two queues per port, four ports.
        let mut recycled: Recycled<16> = Recycled::new();
        let regions: [Region; 16] = core::array::from_fn(|i| Region {
            address: 0x4000_0000 + i * 0x1000,
            pages: 1,
        });
        for region in regions {
            assert_eq!(recycled.keep(region), Ok(()));
        }
        let extra = Region {
            address: 0x5000_0000,
            pages: 1,
        };
        assert_eq!(
            recycled.keep(extra),
            Err(extra),
            "full: the caller frees it"
        );
        let mut taken: Vec<usize> = (0..16)
            .map(|_| recycled.take(1).expect("kept").address)
            .collect();
        taken.sort_unstable();
        assert_eq!(taken, regions.map(|region| region.address));
        assert_eq!(recycled.take(1), None);
    }
}
