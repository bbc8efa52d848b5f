//! Count: item frequency counting over a dense item space, with a bitmap of the items seen.
//!
//! Counters are bumped through the fetch-and-add engine; the bitmap answers "how many distinct
//! items" without scanning the counters. Request format: docs/services.md, section Count.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::codec::{Request, Response};
use crate::collections::{ReliableArray, SnapshotReader, SnapshotWriter};
use crate::kind::ServiceKind;
use crate::service::{Context, Service, ServiceError, ServiceId, ServiceIdentity, StateError};

/// Operation codes (first request byte).
pub mod op {
    /// Count each listed item once.
    pub const ADD: u8 = 1;
    /// Read the counts of the listed items.
    pub const GET: u8 = 2;
    /// Read the number of distinct items seen and of all additions.
    pub const STATS: u8 = 3;
}

/// Request builders (client side; they allocate).
pub mod request {
    use super::op;
    use crate::codec::RequestBuilder;
    use alloc::vec::Vec;

    /// Count each of `items` once.
    pub fn add(items: &[u32]) -> Vec<u8> {
        RequestBuilder::new(op::ADD)
            .list(items, |b, &i| b.u32(i))
            .build()
    }

    /// Read the counts of `items`.
    pub fn get(items: &[u32]) -> Vec<u8> {
        RequestBuilder::new(op::GET)
            .list(items, |b, &i| b.u32(i))
            .build()
    }

    /// Read distinct and total counts.
    pub fn stats() -> Vec<u8> {
        RequestBuilder::new(op::STATS).build()
    }
}

const STATE_VERSION: u8 = 1;

/// Deploy-time configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CountConfig {
    /// Size of the item space: item ids are `0..items`.
    pub items: u32,
}

impl Default for CountConfig {
    fn default() -> Self {
        Self { items: 1 << 20 }
    }
}

/// The Count service.
pub struct Count {
    identity: ServiceIdentity,
    counts: ReliableArray<AtomicU64>,
    /// Bit `i` is set once item `i` has been counted.
    seen: ReliableArray<u64>,
    distinct: u64,
    /// Additions counted: the instance's own (it has `&mut self`), no engine needed.
    total: u64,
}

impl Count {
    /// Heap bytes an instance with `config` allocates.
    pub const fn footprint(config: &CountConfig) -> usize {
        let items = config.items as usize;
        ReliableArray::<AtomicU64>::bytes_for(items)
            + ReliableArray::<u64>::bytes_for(items.div_ceil(64))
    }

    /// A Count instance with every counter at zero.
    pub fn new(id: ServiceId, config: CountConfig) -> Self {
        let items = config.items as usize;
        Self {
            identity: ServiceIdentity::new(id, ServiceKind::Count, 512, 300),
            counts: ReliableArray::from_fn(items, |_| AtomicU64::new(0)),
            seen: ReliableArray::filled(items.div_ceil(64), 0),
            distinct: 0,
            total: 0,
        }
    }

    /// Item ids of a request, all checked to be in range before any is used.
    fn items<'r>(&self, request: &mut Request<'r>) -> Result<&'r [u8], ServiceError> {
        let n = usize::from(request.u16()?);
        let items = request.records(n, 4)?;
        let bound = self.counts.len();
        if items
            .chunks_exact(4)
            .any(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize >= bound)
        {
            return Err(ServiceError::BadField);
        }
        Ok(items)
    }
}

fn item_ids(items: &[u8]) -> impl Iterator<Item = usize> + '_ {
    items
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize)
}

impl Service for Count {
    fn identity(&self) -> ServiceIdentity {
        self.identity
    }

    fn handle(
        &mut self,
        ctx: &mut Context<'_>,
        request: &[u8],
        response: &mut [u8],
    ) -> Result<usize, ServiceError> {
        let mut request = Request::new(request);
        let atomics = ctx.engines.atomics();
        match request.u8()? {
            op::ADD => {
                let items = self.items(&mut request)?;
                let mut out = Response::new(response)?;
                let mut fresh = 0u16;
                for item in item_ids(items) {
                    if atomics.fetch_add(&self.counts[item], 1) == 0 {
                        self.seen[item / 64] |= 1 << (item % 64);
                        fresh += 1;
                    }
                }
                self.distinct += u64::from(fresh);
                self.total = self.total.wrapping_add(items.len() as u64 / 4);
                out.u16(fresh)?;
                Ok(out.finish())
            }
            op::GET => {
                let items = self.items(&mut request)?;
                let mut out = Response::new(response)?;
                if out.space() < items.len() * 2 {
                    return Err(ServiceError::ResponseTooSmall);
                }
                for item in item_ids(items) {
                    out.u64(self.counts[item].load(Ordering::Relaxed))?;
                }
                Ok(out.finish())
            }
            op::STATS => {
                let mut out = Response::new(response)?;
                out.u64(self.distinct)?.u64(self.total)?;
                Ok(out.finish())
            }
            _ => Err(ServiceError::BadOpcode),
        }
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        let mut w = SnapshotWriter::new(out, ServiceKind::Count, STATE_VERSION);
        self.counts.snapshot(&mut w);
        self.seen.snapshot(&mut w);
        w.record(&self.total);
        w.finish();
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateError> {
        let mut r = SnapshotReader::open(snapshot, ServiceKind::Count, STATE_VERSION)?;
        let counts = ReliableArray::<AtomicU64>::decode(&mut r, self.counts.len())?;
        let seen = ReliableArray::<u64>::decode(&mut r, self.seen.len())?;
        let total: u64 = r.record()?;
        r.finish()?;
        // The bitmap must say exactly which counters are non-zero.
        let consistent = counts.iter().enumerate().all(|(i, c)| {
            (c.load(Ordering::Relaxed) != 0) == (seen[i / 64] & (1 << (i % 64)) != 0)
        }) && seen.iter().enumerate().all(|(word, bits)| {
            // No bit past the last item.
            (word * 64..word * 64 + 64)
                .filter(|&i| bits & (1 << (i % 64)) != 0)
                .all(|i| i < counts.len())
        });
        if !consistent {
            return Err(StateError::Corrupt);
        }
        self.distinct = seen.iter().map(|w| u64::from(w.count_ones())).sum();
        self.counts = counts;
        self.seen = seen;
        self.total = total;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::request::{add, get};
    use super::*;
    use crate::services::testing::{call, Harness};
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};

    fn small() -> Count {
        Count::new(ServiceId(1), CountConfig { items: 100 })
    }

    #[test]
    fn counts_match_a_plain_hash_map() {
        let mut h = Harness::new(small());
        let mut exact: HashMap<u32, u64> = HashMap::new();
        let stream: Vec<u32> = (0..2000u32).map(|i| (i * i + 7 * i) % 97).collect();
        for batch in stream.chunks(37) {
            let fresh = batch
                .iter()
                .filter(|i| {
                    let c = exact.entry(**i).or_default();
                    *c += 1;
                    *c == 1
                })
                .count();
            assert_eq!(h.ok(&add(batch)), (fresh as u16).to_le_bytes());
        }
        let all: Vec<u32> = (0..100).collect();
        let counts = h.ok(&get(&all));
        for (item, chunk) in all.iter().zip(counts.chunks(8)) {
            let got = u64::from_le_bytes(chunk.try_into().unwrap());
            assert_eq!(got, exact.get(item).copied().unwrap_or(0));
        }
        let stats = h.ok(&[op::STATS]);
        assert_eq!(stats[..8], (exact.len() as u64).to_le_bytes());
        assert_eq!(stats[8..], 2000u64.to_le_bytes());
    }

    #[test]
    fn bad_requests_change_nothing() {
        let mut h = Harness::new(small());
        assert_eq!(h.err(&[]), ServiceError::Truncated);
        assert_eq!(h.err(&[9]), ServiceError::BadOpcode);
        assert_eq!(h.err(&[op::ADD, 3, 0, 1, 0, 0, 0]), ServiceError::BadLength);
        assert_eq!(h.err(&add(&[1, 2, 100])), ServiceError::BadField);
        assert_eq!(h.ok(&get(&[1, 2])), [0; 16]);
        let mut tiny = [0u8; 8];
        assert_eq!(
            call(&mut h.service, &get(&[1]), &mut tiny),
            Err(ServiceError::ResponseTooSmall)
        );
    }

    #[test]
    fn snapshot_restore_gives_identical_answers() {
        let mut h = Harness::new(small());
        h.ok(&add(&[1, 5, 5, 99]));
        let mut other = Harness::new(small());
        h.migrate_to(&mut other);
        for request in [get(&[1, 5, 99, 0]), vec![op::STATS], add(&[5, 6])] {
            assert_eq!(h.ok(&request), other.ok(&request));
        }
        let mut wrong_size = Count::new(ServiceId(2), CountConfig { items: 50 });
        let mut bytes = Vec::new();
        h.service.snapshot(&mut bytes);
        assert_eq!(wrong_size.restore(&bytes), Err(StateError::TooLarge));
    }

    #[test]
    fn inconsistent_bitmap_is_refused() {
        let mut c = small();
        c.counts[3] = AtomicU64::new(1);
        let mut bytes = Vec::new();
        c.snapshot(&mut bytes);
        assert_eq!(small().restore(&bytes), Err(StateError::Corrupt));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Add(Vec<u32>),
        Get(Vec<u32>),
        Stats,
    }

    proptest! {
        /// Random batches over a random item space (ids a little past its end included)
        /// against exact counts in a hash map.
        #[test]
        fn agrees_with_exact_counts(
            items in 1u32..100,
            ops in proptest::collection::vec(prop_oneof![
                4 => proptest::collection::vec(0u32..104, 0..40).prop_map(Op::Add),
                2 => proptest::collection::vec(0u32..104, 0..40).prop_map(Op::Get),
                1 => Just(Op::Stats),
            ], 1..40),
        ) {
            let mut h = Harness::new(Count::new(ServiceId(1), CountConfig { items }));
            let mut exact: HashMap<u32, u64> = HashMap::new();
            let mut total = 0u64;
            for op in ops {
                match op {
                    Op::Add(batch) if batch.iter().any(|&i| i >= items) => {
                        prop_assert_eq!(h.err(&add(&batch)), ServiceError::BadField);
                    }
                    Op::Add(batch) => {
                        let distinct: HashSet<u32> = batch.iter().copied().collect();
                        let fresh = distinct.iter().filter(|i| !exact.contains_key(i)).count();
                        for &i in &batch {
                            *exact.entry(i).or_default() += 1;
                        }
                        total += batch.len() as u64;
                        prop_assert_eq!(h.ok(&add(&batch)), (fresh as u16).to_le_bytes());
                    }
                    Op::Get(batch) if batch.iter().any(|&i| i >= items) => {
                        prop_assert_eq!(h.err(&get(&batch)), ServiceError::BadField);
                    }
                    Op::Get(batch) => {
                        let expected: Vec<u8> = batch
                            .iter()
                            .flat_map(|i| exact.get(i).copied().unwrap_or(0).to_le_bytes())
                            .collect();
                        prop_assert_eq!(h.ok(&get(&batch)), expected);
                    }
                    Op::Stats => {
                        let expected = [(exact.len() as u64).to_le_bytes(), total.to_le_bytes()];
                        prop_assert_eq!(h.ok(&[op::STATS]), expected.concat());
                    }
                }
            }
        }
    }
}
