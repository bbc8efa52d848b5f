//! KNN: classifies a feature vector by majority vote of its K nearest training points
//! (squared Euclidean distance).
//!
//! The training set is read-only deploy-time configuration. The scan keeps the K best so far
//! in a small fixed array and abandons a point's distance as soon as its partial sum reaches
//! the current K-th best (the terms are non-negative, so the answer is exactly the full
//! scan's). Ties: the earlier training point is nearer; the label with most votes wins, then
//! the smaller label. Request format: docs/services.md, section KNN.

use alloc::vec::Vec;
use core::fmt;

use crate::codec::{Request, Response};
use crate::kind::ServiceKind;
use crate::service::{Context, Service, ServiceError, ServiceId, ServiceIdentity};

/// Largest K a request may ask for.
pub const MAX_K: usize = 32;
/// Most features per point.
pub const MAX_DIMS: usize = 256;

/// Request builders (client side; they allocate).
pub mod request {
    use crate::codec::RequestBuilder;
    use alloc::vec::Vec;

    /// Classify `features` by its `k` nearest neighbours.
    pub fn classify(k: u16, features: &[f32]) -> Vec<u8> {
        let mut builder = RequestBuilder::default().u16(k);
        builder = builder.list(features, |b, &x| b.f32(x));
        builder.build()
    }
}

/// Why a training set was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KnnError {
    /// No dimension or more than [`MAX_DIMS`], no point, or a feature count that is not
    /// the dimension times the number of labels.
    Shape,
    /// A feature is NaN or infinite.
    NotFinite,
}

impl fmt::Display for KnnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KnnError::Shape => "training set has no point or a ragged shape",
            KnnError::NotFinite => "training feature not finite",
        })
    }
}

/// The KNN service.
pub struct Knn {
    identity: ServiceIdentity,
    dims: usize,
    /// Row-major points, `dims` features each.
    points: Vec<f32>,
    labels: Vec<u16>,
}

impl Knn {
    /// A classifier over `points` (row-major, `dims` features each) with their `labels`.
    pub fn new(
        id: ServiceId,
        dims: usize,
        points: Vec<f32>,
        labels: Vec<u16>,
    ) -> Result<Self, KnnError> {
        if dims == 0 || dims > MAX_DIMS || labels.is_empty() || points.len() != dims * labels.len()
        {
            return Err(KnnError::Shape);
        }
        if points.iter().any(|x| !x.is_finite()) {
            return Err(KnnError::NotFinite);
        }
        Ok(Self {
            identity: ServiceIdentity::new(id, ServiceKind::Knn, 512, 200_000),
            dims,
            points,
            labels,
        })
    }

    /// The label of `query`'s `k` nearest neighbours and its votes.
    fn classify(&self, query: &[f32], k: usize) -> (u16, u16) {
        // (distance, index) of the best so far, unordered; `worst` indexes the farthest.
        let mut best = [(0f32, 0usize); MAX_K];
        let mut len = 0;
        let mut worst = 0;
        for (index, point) in self.points.chunks_exact(self.dims).enumerate() {
            let bound = if len == k {
                best[worst].0
            } else {
                f32::INFINITY
            };
            let mut distance = 0f32;
            for (a, b) in point.iter().zip(query) {
                let d = a - b;
                distance += d * d;
                if distance >= bound {
                    break;
                }
            }
            if distance >= bound {
                continue;
            }
            if len < k {
                best[len] = (distance, index);
                len += 1;
            } else {
                best[worst] = (distance, index);
            }
            if len == k {
                worst = (0..k)
                    .max_by(|&i, &j| {
                        best[i]
                            .0
                            .total_cmp(&best[j].0)
                            .then(best[i].1.cmp(&best[j].1))
                    })
                    .unwrap_or(0);
            }
        }
        vote(best[..len].iter().map(|&(_, index)| self.labels[index]))
    }
}

/// The label with most votes (then the smallest), and its votes.
pub fn vote(labels: impl Iterator<Item = u16> + Clone) -> (u16, u16) {
    let mut winner = (0u16, 0u16);
    for label in labels.clone() {
        let votes = labels.clone().filter(|&l| l == label).count() as u16;
        if votes > winner.1 || (votes == winner.1 && label < winner.0) {
            winner = (label, votes);
        }
    }
    winner
}

impl Service for Knn {
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
        let k = usize::from(request.u16()?);
        let dims = usize::from(request.u16()?);
        let features = request.records(dims, 4)?;
        if dims != self.dims || k == 0 || k > MAX_K.min(self.labels.len()) {
            return Err(ServiceError::BadField);
        }
        let mut query = [0f32; MAX_DIMS];
        let query = query.get_mut(..dims).ok_or(ServiceError::BadField)?;
        for (q, c) in query.iter_mut().zip(features.chunks_exact(4)) {
            *q = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            if !q.is_finite() {
                return Err(ServiceError::BadField);
            }
        }
        let mut out = Response::new(response)?;
        let (label, votes) = self.classify(query, k);
        out.u16(label)?.u16(votes)?;
        Ok(out.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::request::classify;
    use super::*;
    use crate::services::testing::Harness;
    use proptest::prelude::*;

    /// Brute force: every distance, full sort by (distance, index), then a count of the
    /// first k's labels; most votes wins, the smallest label among equals.
    fn brute_force(
        points: &[f32],
        labels: &[u16],
        dims: usize,
        query: &[f32],
        k: usize,
    ) -> (u16, u16) {
        let mut all: Vec<(f32, usize)> = points
            .chunks(dims)
            .enumerate()
            .map(|(i, p)| {
                (
                    p.iter()
                        .zip(query)
                        .map(|(a, b)| (a - b) * (a - b))
                        .fold(0.0, |s, x| s + x),
                    i,
                )
            })
            .collect();
        all.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.cmp(&b.1)));
        let mut votes = std::collections::BTreeMap::<u16, u16>::new();
        for &(_, i) in &all[..k] {
            *votes.entry(labels[i]).or_default() += 1;
        }
        // Ascending labels: a later label replaces the leader only with strictly more votes.
        votes.into_iter().fold(
            (0, 0),
            |best, (label, n)| if n > best.1 { (label, n) } else { best },
        )
    }

    proptest! {
        #[test]
        fn agrees_with_brute_force(
            seed_points in proptest::collection::vec(-8i8..8, 3 * 40),
            seed_labels in proptest::collection::vec(0u16..4, 40),
            queries in proptest::collection::vec(proptest::collection::vec(-9i8..9, 3), 1..20),
            k in 1usize..12,
        ) {
            // Small integers make exact distance ties common.
            let points: Vec<f32> = seed_points.iter().map(|&x| f32::from(x) / 2.0).collect();
            let mut h = Harness::new(Knn::new(ServiceId(1), 3, points.clone(), seed_labels.clone()).unwrap());
            for q in queries {
                let query: Vec<f32> = q.iter().map(|&x| f32::from(x) / 2.0).collect();
                let answer = h.ok(&classify(k as u16, &query));
                let expected = brute_force(&points, &seed_labels, 3, &query, k);
                prop_assert_eq!(answer, [expected.0.to_le_bytes(), expected.1.to_le_bytes()].concat());
            }
        }
    }

    #[test]
    fn bad_requests_and_models() {
        assert_eq!(
            Knn::new(ServiceId(1), 2, vec![1.0; 3], vec![0, 1]).err(),
            Some(KnnError::Shape)
        );
        assert_eq!(
            Knn::new(ServiceId(1), 1, vec![f32::NAN], vec![0]).err(),
            Some(KnnError::NotFinite)
        );
        let mut h =
            Harness::new(Knn::new(ServiceId(1), 2, vec![0.0, 0.0, 1.0, 1.0], vec![3, 4]).unwrap());
        assert_eq!(h.ok(&classify(1, &[0.9, 0.8])), [4, 0, 1, 0]);
        assert_eq!(h.err(&classify(3, &[0.9, 0.8])), ServiceError::BadField);
        assert_eq!(h.err(&classify(0, &[0.9, 0.8])), ServiceError::BadField);
        assert_eq!(h.err(&classify(1, &[0.9])), ServiceError::BadField);
        assert_eq!(
            h.err(&classify(1, &[0.9, f32::NAN])),
            ServiceError::BadField
        );
        assert_eq!(
            h.err(&classify(1, &[0.9, 0.8])[..9]),
            ServiceError::BadLength
        );
        assert_eq!(h.err(&[1]), ServiceError::Truncated);
    }
}
