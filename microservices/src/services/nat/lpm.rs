//! DIR-24-8-BASIC longest-prefix match (Gupta, Lin and McKeown, INFOCOM 1998): a table of
//! 2^24 entries indexed by the top 24 address bits answers prefixes up to /24 in one access;
//! an entry can instead point to a 256-entry segment indexed by the last 8 bits, for the
//! longer prefixes under that /24. Two memory accesses at most per lookup.

use alloc::vec::Vec;
use core::fmt;

/// Largest value a route can carry (15 bits: the top bit of an entry marks a segment).
pub const MAX_VALUE: u16 = 0x7ffe;
/// Most segments (distinct /24s holding routes longer than /24).
pub const MAX_SEGMENTS: usize = 0x8000;

const SEGMENT: u16 = 0x8000;

/// Why a table could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LpmError {
    /// A prefix longer than 32 bits, or with bits set past its length.
    BadPrefix,
    /// A value above [`MAX_VALUE`].
    BadValue,
    /// More than [`MAX_SEGMENTS`] /24s hold longer prefixes.
    TooManySegments,
    /// The allocator could not give the table its memory.
    NoMemory,
}

impl fmt::Display for LpmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LpmError::BadPrefix => "prefix longer than 32 bits or with host bits set",
            LpmError::BadValue => "route value out of range",
            LpmError::TooManySegments => "too many /24s with longer prefixes",
            LpmError::NoMemory => "no memory for the table",
        })
    }
}

/// The network mask of a `len`-bit prefix (`len <= 32`).
pub const fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len as u32)
    }
}

/// Bytes of the first level: 2^24 two-byte entries (32 MiB).
pub const TBL24_BYTES: usize = (1 << 24) * size_of::<u16>();
/// Bytes of one segment: 256 two-byte entries.
pub const SEGMENT_BYTES: usize = 256 * size_of::<u16>();

/// A built DIR-24-8 table. Entries hold `value + 1`, 0 meaning no route.
pub struct Dir24_8 {
    tbl24: Vec<u16>,
    long: Vec<u16>,
}

impl Dir24_8 {
    /// Builds the table for `routes` of `(prefix, length, value)`. Where two routes have the
    /// same prefix and length, the later one wins.
    pub fn build(routes: &[(u32, u8, u16)]) -> Result<Self, LpmError> {
        for &(prefix, len, value) in routes {
            if len > 32 || prefix & !mask(len) != 0 {
                return Err(LpmError::BadPrefix);
            }
            if value > MAX_VALUE {
                return Err(LpmError::BadValue);
            }
        }
        // Shorter prefixes first, so longer ones overwrite them (a stable sort keeps the
        // later of two equal routes last).
        let mut order: Vec<usize> = (0..routes.len()).collect();
        order.sort_by_key(|&i| routes[i].1);
        // The 32 MiB first level and every segment are allocated fallibly: on a NIC a table
        // that does not fit is refused, not a crash.
        let mut tbl24 = Vec::new();
        tbl24
            .try_reserve_exact(1 << 24)
            .map_err(|_| LpmError::NoMemory)?;
        tbl24.resize(1 << 24, 0);
        let mut table = Self {
            tbl24,
            long: Vec::new(),
        };
        for i in order {
            let (prefix, len, value) = routes[i];
            let entry = value + 1;
            if len <= 24 {
                let start = (prefix >> 8) as usize;
                let span = 1usize << (24 - len);
                table.tbl24[start..start + span].fill(entry);
            } else {
                let segment = table.segment_for(prefix)?;
                let start = segment * 256 + (prefix & 0xff) as usize;
                let span = 1usize << (32 - len);
                table.long[start..start + span].fill(entry);
            }
        }
        Ok(table)
    }

    /// The segment of `prefix`'s /24, created from its current entry if needed.
    fn segment_for(&mut self, prefix: u32) -> Result<usize, LpmError> {
        let slot = &mut self.tbl24[(prefix >> 8) as usize];
        if *slot & SEGMENT != 0 {
            return Ok(usize::from(*slot & !SEGMENT));
        }
        let segment = self.long.len() / 256;
        if segment >= MAX_SEGMENTS {
            return Err(LpmError::TooManySegments);
        }
        let covering = *slot;
        self.long.try_reserve(256).map_err(|_| LpmError::NoMemory)?;
        self.long.resize(self.long.len() + 256, covering);
        *slot = SEGMENT | segment as u16;
        Ok(segment)
    }

    /// Heap bytes a table of `routes` routes, `segments` of them under distinct /24s longer than
    /// /24, takes while it is built and after: the first level, the segments (their array
    /// doubles as it grows, so up to twice that), and the build's sort order and its scratch.
    pub const fn footprint(routes: usize, segments: usize) -> usize {
        let segments = if segments < MAX_SEGMENTS {
            segments
        } else {
            MAX_SEGMENTS
        };
        TBL24_BYTES + 2 * segments * SEGMENT_BYTES + 2 * routes * size_of::<usize>()
    }

    /// The value of the longest prefix that contains `address`.
    #[inline]
    pub fn lookup(&self, address: u32) -> Option<u16> {
        let entry = self.tbl24[(address >> 8) as usize];
        let entry = if entry & SEGMENT != 0 {
            let index = usize::from(entry & !SEGMENT) * 256 + (address & 0xff) as usize;
            // Segments are created with 256 entries each, so `index` is in bounds.
            self.long.get(index).copied().unwrap_or(0)
        } else {
            entry
        };
        entry.checked_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference: scan every route, keep the longest match (the later one on ties).
    fn linear(routes: &[(u32, u8, u16)], address: u32) -> Option<u16> {
        let mut best: Option<(u8, u16)> = None;
        for &(prefix, len, value) in routes {
            if address & mask(len) == prefix && best.is_none_or(|(l, _)| len >= l) {
                best = Some((len, value));
            }
        }
        best.map(|(_, v)| v)
    }

    fn route() -> impl Strategy<Value = (u32, u8, u16)> {
        // Addresses from a small pool of /16s so that prefixes nest and overlap.
        (0u32..4, any::<u16>(), 0u8..=32, 0u16..100).prop_map(|(net, host, len, value)| {
            let address = 0x0a00_0000 | (net << 16) | u32::from(host);
            (address & mask(len), len, value)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn agrees_with_a_linear_scan(
            routes in proptest::collection::vec(route(), 0..40),
            probes in proptest::collection::vec((0u32..4, any::<u16>()), 200),
        ) {
            let table = Dir24_8::build(&routes).unwrap();
            for (net, host) in probes {
                let address = 0x0a00_0000 | (net << 16) | u32::from(host);
                prop_assert_eq!(table.lookup(address), linear(&routes, address));
            }
            for &(prefix, _, _) in &routes {
                prop_assert_eq!(table.lookup(prefix), linear(&routes, prefix));
            }
        }
    }

    #[test]
    fn bad_routes_are_refused() {
        assert_eq!(
            Dir24_8::build(&[(1, 24, 0)]).err(),
            Some(LpmError::BadPrefix)
        );
        assert_eq!(
            Dir24_8::build(&[(0, 33, 0)]).err(),
            Some(LpmError::BadPrefix)
        );
        assert_eq!(
            Dir24_8::build(&[(0, 8, 0x7fff)]).err(),
            Some(LpmError::BadValue)
        );
        let table = Dir24_8::build(&[(0, 0, 5), (0x0a00_0080, 25, 6)]).unwrap();
        assert_eq!(table.lookup(0x0a00_0081), Some(6));
        assert_eq!(table.lookup(0x0a00_0001), Some(5));
        assert_eq!(table.lookup(0xffff_ffff), Some(5));
    }
}
