//! Top ranker: running scores per item and the top K of them, selected by quicksort-style
//! partitioning (`select_nth_unstable`) and then sorted.
//!
//! Scores live in a reliable map; the selection works in a scratch buffer allocated at deploy
//! time, so a TOP request does not allocate. Request format: docs/services.md, section Top
//! ranker.

use alloc::vec::Vec;
use core::cmp::Ordering;

use crate::codec::{Request, Response};
use crate::collections::{ReliableMap, SnapshotReader, SnapshotWriter};
use crate::kind::ServiceKind;
use crate::service::{Context, Service, ServiceError, ServiceId, ServiceIdentity, StateError};

/// Operation codes (first request byte).
pub mod op {
    /// Add deltas to items' scores.
    pub const UPDATE: u8 = 1;
    /// Read the K best items.
    pub const TOP: u8 = 2;
}

/// Request builders (client side; they allocate).
pub mod request {
    use super::op;
    use crate::codec::RequestBuilder;
    use alloc::vec::Vec;

    /// Add each `(item, delta)`.
    pub fn update(deltas: &[(u32, f32)]) -> Vec<u8> {
        RequestBuilder::new(op::UPDATE)
            .list(deltas, |b, &(item, delta)| b.u32(item).f32(delta))
            .build()
    }

    /// Read the `k` best items.
    pub fn top(k: u16) -> Vec<u8> {
        RequestBuilder::new(op::TOP).u16(k).build()
    }
}

const STATE_VERSION: u8 = 1;

/// Deploy-time configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopRankerConfig {
    /// Most items scored at once.
    pub items: usize,
    /// Seed of the score table's hash function.
    pub seed: u64,
}

impl Default for TopRankerConfig {
    fn default() -> Self {
        Self {
            items: 16384,
            seed: 0x746f_7072_616e_6b00,
        }
    }
}

/// Best first: higher score, then lower item id.
pub fn rank(a: &(f64, u32), b: &(f64, u32)) -> Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

/// Moves the `k` best of `items` (by `order`, best first) to the front, sorted; returns them.
/// Partitions like quicksort around pivots until the k-th position is settled, then sorts only
/// that prefix: O(n + k log k) on average, no allocation.
pub fn top_k<T>(items: &mut [T], k: usize, order: impl Fn(&T, &T) -> Ordering) -> &[T] {
    let k = k.min(items.len());
    if k == 0 {
        return &[];
    }
    if k < items.len() {
        items.select_nth_unstable_by(k - 1, &order);
    }
    let best = &mut items[..k];
    best.sort_unstable_by(&order);
    best
}

/// The top ranker service.
pub struct TopRanker {
    identity: ServiceIdentity,
    scores: ReliableMap<u32, f64>,
    scratch: Vec<(f64, u32)>,
}

impl TopRanker {
    /// Heap bytes an instance with `config` allocates.
    pub const fn footprint(config: &TopRankerConfig) -> usize {
        ReliableMap::<u32, f64>::bytes_for(config.items) + config.items * size_of::<(f64, u32)>()
    }

    /// A ranker with no item.
    pub fn new(id: ServiceId, config: TopRankerConfig) -> Self {
        Self {
            identity: ServiceIdentity::new(id, ServiceKind::TopRanker, 512, 2000),
            scores: ReliableMap::with_capacity(config.items, config.seed),
            scratch: Vec::with_capacity(config.items),
        }
    }
}

fn pairs(records: &[u8]) -> impl Iterator<Item = (u32, f64)> + Clone + '_ {
    records.chunks_exact(8).map(|c| {
        (
            u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            f64::from(f32::from_le_bytes([c[4], c[5], c[6], c[7]])),
        )
    })
}

impl Service for TopRanker {
    fn identity(&self) -> ServiceIdentity {
        self.identity
    }

    fn handle(
        &mut self,
        _ctx: &mut Context<'_>,
        request: &[u8],
        response: &mut [u8],
    ) -> Result<usize, ServiceError> {
        let mut request = Request::new(request);
        match request.u8()? {
            op::UPDATE => {
                let n = usize::from(request.u16()?);
                let deltas = pairs(request.records(n, 8)?);
                if deltas.clone().any(|(_, d)| !d.is_finite()) {
                    return Err(ServiceError::BadField);
                }
                let mut out = Response::new(response)?;
                if out.space() < 4 {
                    return Err(ServiceError::ResponseTooSmall);
                }
                let new = deltas
                    .clone()
                    .filter(|(item, _)| !self.scores.contains_key(item))
                    .count();
                // Duplicates of a new item are counted more than once: the check is
                // conservative and nothing is applied when it fails.
                if self.scores.len() + new > self.scores.capacity() {
                    let mut distinct_new = 0;
                    for (i, (item, _)) in deltas.clone().enumerate() {
                        let first = deltas.clone().take(i).all(|(other, _)| other != item);
                        if first && !self.scores.contains_key(&item) {
                            distinct_new += 1;
                        }
                    }
                    if self.scores.len() + distinct_new > self.scores.capacity() {
                        return Err(ServiceError::Full);
                    }
                }
                for (item, delta) in deltas {
                    if let Ok((score, _)) = self.scores.get_or_insert_with(&item, || (item, 0.0)) {
                        *score += delta;
                    }
                }
                out.u32(self.scores.len() as u32)?;
                Ok(out.finish())
            }
            op::TOP => {
                let k = usize::from(request.u16()?);
                let mut out = Response::new(response)?;
                let m = k.min(self.scores.len());
                if out.space() < 2 + 12 * m {
                    return Err(ServiceError::ResponseTooSmall);
                }
                self.scratch.clear();
                self.scratch
                    .extend(self.scores.iter().map(|(&item, &score)| (score, item)));
                out.u16(m as u16)?;
                for &(score, item) in top_k(&mut self.scratch, m, rank) {
                    out.u32(item)?.f64(score)?;
                }
                Ok(out.finish())
            }
            _ => Err(ServiceError::BadOpcode),
        }
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        let mut w = SnapshotWriter::new(out, ServiceKind::TopRanker, STATE_VERSION);
        self.scores.snapshot(&mut w);
        w.finish();
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateError> {
        let mut r = SnapshotReader::open(snapshot, ServiceKind::TopRanker, STATE_VERSION)?;
        let scores = self.scores.decode_like(&mut r)?;
        r.finish()?;
        if scores.iter().any(|(_, s)| !s.is_finite()) {
            return Err(StateError::Corrupt);
        }
        self.scores = scores;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::request::{top, update};
    use super::*;
    use crate::services::testing::Harness;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn ranker(items: usize) -> Harness<TopRanker> {
        Harness::new(TopRanker::new(
            ServiceId(1),
            TopRankerConfig { items, seed: 9 },
        ))
    }

    fn decode(answer: &[u8]) -> Vec<(u32, f64)> {
        let m = u16::from_le_bytes([answer[0], answer[1]]) as usize;
        assert_eq!(answer.len(), 2 + 12 * m);
        answer[2..]
            .chunks(12)
            .map(|c| {
                (
                    u32::from_le_bytes(c[..4].try_into().unwrap()),
                    f64::from_le_bytes(c[4..].try_into().unwrap()),
                )
            })
            .collect()
    }

    proptest! {
        #[test]
        fn top_k_equals_a_full_sort(
            batches in proptest::collection::vec(
                proptest::collection::vec((0u32..50, -4i8..10), 0..40), 1..8),
            k in 0u16..60,
        ) {
            let mut h = ranker(64);
            let mut exact: HashMap<u32, f64> = HashMap::new();
            for batch in &batches {
                let deltas: Vec<(u32, f32)> = batch.iter().map(|&(i, d)| (i, f32::from(d))).collect();
                for &(item, delta) in &deltas {
                    *exact.entry(item).or_default() += f64::from(delta);
                }
                h.ok(&update(&deltas));
            }
            let mut sorted: Vec<(f64, u32)> = exact.iter().map(|(&i, &s)| (s, i)).collect();
            // Higher score first, then the lower item (scores are sums of small integers).
            sorted.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then(a.1.cmp(&b.1)));
            let expected: Vec<(u32, f64)> =
                sorted.iter().take(usize::from(k)).map(|&(s, i)| (i, s)).collect();
            prop_assert_eq!(decode(&h.ok(&top(k))), expected);
        }
    }

    #[test]
    fn full_table_refuses_the_whole_batch() {
        let mut h = ranker(3);
        h.ok(&update(&[(1, 1.0), (2, 1.0)]));
        assert_eq!(
            h.ok(&update(&[(3, 1.0), (3, 2.0), (1, 1.0)])),
            3u32.to_le_bytes()
        );
        assert_eq!(h.err(&update(&[(1, 5.0), (4, 1.0)])), ServiceError::Full);
        assert_eq!(decode(&h.ok(&top(1))), [(3, 3.0)]);
        assert_eq!(h.err(&update(&[(1, f32::NAN)])), ServiceError::BadField);
        assert_eq!(h.err(&[op::TOP]), ServiceError::Truncated);
        let mut other = ranker(3);
        h.migrate_to(&mut other);
        assert_eq!(h.ok(&top(5)), other.ok(&top(5)));
    }
}
