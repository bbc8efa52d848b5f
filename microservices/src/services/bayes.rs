//! Naive Bayes: the maximum a posteriori class of a document given as token ids, under a
//! multinomial model with Laplace smoothing trained at deploy time.
//!
//! The model stores `log P(class)` and `log P(token | class)` token-major, so a document's n
//! tokens cost n contiguous reads of one row per class. Request format: docs/services.md,
//! section Bayes.

use alloc::vec::Vec;
use core::fmt;

use crate::codec::{Request, Response};
use crate::kind::ServiceKind;
use crate::service::{Context, Service, ServiceError, ServiceId, ServiceIdentity};

/// Most classes a model may have.
pub const MAX_CLASSES: usize = 64;

/// Request builders (client side; they allocate).
pub mod request {
    use crate::codec::RequestBuilder;
    use alloc::vec::Vec;

    /// Classify the document made of `tokens`.
    pub fn classify(tokens: &[u32]) -> Vec<u8> {
        RequestBuilder::default()
            .list(tokens, |b, &t| b.u32(t))
            .build()
    }
}

/// Why a model could not be trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BayesError {
    /// No class or more than [`MAX_CLASSES`], or an empty vocabulary.
    Shape,
    /// A document names a class or token out of range.
    OutOfRange,
}

impl fmt::Display for BayesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BayesError::Shape => "no class, too many classes or no vocabulary",
            BayesError::OutOfRange => "training document with a class or token out of range",
        })
    }
}

/// The naive Bayes service.
pub struct Bayes {
    identity: ServiceIdentity,
    classes: usize,
    vocabulary: usize,
    log_prior: Vec<f64>,
    /// `log P(token | class)` at `token * classes + class`.
    log_likelihood: Vec<f64>,
}

impl Bayes {
    /// Heap bytes training a model of `classes` classes over `vocabulary` tokens takes (its
    /// counts while it trains, then its log-likelihoods), besides the training documents.
    pub const fn footprint(classes: usize, vocabulary: usize) -> usize {
        let cells = classes * vocabulary;
        cells * (size_of::<u64>() + size_of::<f64>()) + classes * 3 * size_of::<u64>()
    }

    /// Trains on `documents` of `(class, tokens)`, classes `0..classes`, tokens
    /// `0..vocabulary`, with add-one smoothing.
    pub fn train(
        id: ServiceId,
        classes: usize,
        vocabulary: usize,
        documents: &[(u16, &[u32])],
    ) -> Result<Self, BayesError> {
        if classes == 0 || classes > MAX_CLASSES || vocabulary == 0 {
            return Err(BayesError::Shape);
        }
        let mut per_class = alloc::vec![0u64; classes];
        let mut tokens_in = alloc::vec![0u64; classes];
        let mut counts = alloc::vec![0u64; classes * vocabulary];
        for &(class, tokens) in documents {
            let class = usize::from(class);
            if class >= classes || tokens.iter().any(|&t| t as usize >= vocabulary) {
                return Err(BayesError::OutOfRange);
            }
            per_class[class] += 1;
            tokens_in[class] += tokens.len() as u64;
            for &t in tokens {
                counts[t as usize * classes + class] += 1;
            }
        }
        let documents = documents.len() as f64;
        let log_prior = per_class
            .iter()
            .map(|&n| libm::log((n as f64 + 1.0) / (documents + classes as f64)))
            .collect();
        let log_likelihood = counts
            .iter()
            .enumerate()
            .map(|(at, &n)| {
                let total = tokens_in[at % classes] as f64 + vocabulary as f64;
                libm::log((n as f64 + 1.0) / total)
            })
            .collect();
        Ok(Self {
            identity: ServiceIdentity::new(id, ServiceKind::Bayes, 512, 40_000),
            classes,
            vocabulary,
            log_prior,
            log_likelihood,
        })
    }
}

impl Service for Bayes {
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
        let n = usize::from(request.u16()?);
        let tokens = request.records(n, 4)?;
        let tokens = tokens
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize);
        if tokens.clone().any(|t| t >= self.vocabulary) {
            return Err(ServiceError::BadField);
        }
        let mut out = Response::new(response)?;
        let mut scores = [0f64; MAX_CLASSES];
        let scores = &mut scores[..self.classes];
        scores.copy_from_slice(&self.log_prior);
        for token in tokens {
            let row = &self.log_likelihood[token * self.classes..(token + 1) * self.classes];
            for (score, l) in scores.iter_mut().zip(row) {
                *score += l;
            }
        }
        let (class, score) =
            scores
                .iter()
                .enumerate()
                .fold((0, f64::NEG_INFINITY), |best, (c, &s)| {
                    if s > best.1 {
                        (c, s)
                    } else {
                        best
                    }
                });
        out.u16(class as u16)?.f64(score)?;
        Ok(out.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::request::classify;
    use super::*;
    use crate::services::testing::Harness;
    use proptest::prelude::*;

    /// The joint probability of `doc` with each class, computed plainly: the prior and the
    /// smoothed token frequencies multiplied in f64.
    fn reference(
        docs: &[(u16, Vec<u32>)],
        classes: usize,
        vocabulary: usize,
        doc: &[u32],
    ) -> Vec<f64> {
        (0..classes)
            .map(|c| {
                let in_class: Vec<&Vec<u32>> = docs
                    .iter()
                    .filter(|d| usize::from(d.0) == c)
                    .map(|d| &d.1)
                    .collect();
                let total: usize = in_class.iter().map(|d| d.len()).sum();
                let mut p = (in_class.len() as f64 + 1.0) / (docs.len() as f64 + classes as f64);
                for t in doc {
                    let n: usize = in_class
                        .iter()
                        .map(|d| d.iter().filter(|x| *x == t).count())
                        .sum();
                    p *= (n as f64 + 1.0) / (total + vocabulary) as f64;
                }
                p
            })
            .collect()
    }

    #[test]
    fn agrees_with_the_plain_posterior() {
        let vocabulary = 12;
        let docs: Vec<(u16, Vec<u32>)> = (0..60u32)
            .map(|i| {
                let class = (i % 3) as u16;
                let len = 3 + i % 5 + u32::from(class);
                let tokens = (0..len)
                    .map(|j| (u32::from(class) * 4 + (i * j) % 5 + j % 2) % 12)
                    .collect();
                (class, tokens)
            })
            .collect();
        let refs: Vec<(u16, &[u32])> = docs.iter().map(|(c, t)| (*c, &t[..])).collect();
        let mut h = Harness::new(Bayes::train(ServiceId(1), 3, vocabulary, &refs).unwrap());
        let mut checked = 0;
        for q in 0..60u32 {
            let doc: Vec<u32> = (0..(1 + q % 6)).map(|j| (q * 7 + j * 3) % 12).collect();
            let answer = h.ok(&classify(&doc));
            let class = usize::from(u16::from_le_bytes([answer[0], answer[1]]));
            let score = f64::from_le_bytes(answer[2..10].try_into().unwrap());
            let joint = reference(&docs, 3, vocabulary, &doc);
            let best = joint.iter().cloned().fold(0.0, f64::max);
            assert!((score - best.ln()).abs() < 1e-9);
            // Exact ties are decided by rounding; judge the class where the margin is clear.
            if joint.iter().filter(|&&p| p > best * (1.0 - 1e-9)).count() == 1 {
                assert_eq!(joint[class], best, "document {doc:?}");
                checked += 1;
            }
        }
        assert!(checked > 40);
    }

    #[test]
    fn bad_models_and_requests() {
        assert_eq!(
            Bayes::train(ServiceId(1), 0, 5, &[]).err(),
            Some(BayesError::Shape)
        );
        assert_eq!(
            Bayes::train(ServiceId(1), 2, 5, &[(2, &[1])]).err(),
            Some(BayesError::OutOfRange)
        );
        assert_eq!(
            Bayes::train(ServiceId(1), 2, 5, &[(1, &[5])]).err(),
            Some(BayesError::OutOfRange)
        );
        let mut h = Harness::new(Bayes::train(ServiceId(1), 2, 5, &[(1, &[4])]).unwrap());
        assert_eq!(h.err(&classify(&[5])), ServiceError::BadField);
        assert_eq!(h.err(&[2, 0, 1, 0, 0]), ServiceError::BadLength);
        assert_eq!(h.err(&[2]), ServiceError::Truncated);
        assert_eq!(h.ok(&classify(&[4]))[..2], [1, 0]);
    }

    proptest! {
        /// Random models (classes, vocabulary, training documents) and documents, some with
        /// tokens outside the vocabulary, against the log posterior summed plainly from
        /// counts. The class is judged where the best beats the runner-up by more than
        /// rounding.
        #[test]
        fn agrees_with_the_plain_log_posterior(
            classes in 1usize..5,
            vocabulary in 1usize..12,
            docs in proptest::collection::vec(
                (any::<u16>(), proptest::collection::vec(any::<u32>(), 0..10)), 0..20),
            queries in proptest::collection::vec(proptest::collection::vec(0u32..13, 0..12), 1..10),
        ) {
            let docs: Vec<(u16, Vec<u32>)> = docs
                .iter()
                .map(|(c, t)| {
                    let class = (usize::from(*c) % classes) as u16;
                    (class, t.iter().map(|&x| x % vocabulary as u32).collect())
                })
                .collect();
            let refs: Vec<(u16, &[u32])> = docs.iter().map(|(c, t)| (*c, &t[..])).collect();
            let mut h = Harness::new(Bayes::train(ServiceId(1), classes, vocabulary, &refs).unwrap());
            for query in queries {
                if query.iter().any(|&t| t as usize >= vocabulary) {
                    prop_assert_eq!(h.err(&classify(&query)), ServiceError::BadField);
                    continue;
                }
                let log_joint: Vec<f64> = (0..classes)
                    .map(|c| {
                        let mine: Vec<&Vec<u32>> =
                            docs.iter().filter(|d| usize::from(d.0) == c).map(|d| &d.1).collect();
                        let tokens: usize = mine.iter().map(|d| d.len()).sum();
                        let prior = (mine.len() as f64 + 1.0) / (docs.len() + classes) as f64;
                        query.iter().fold(prior.ln(), |sum, t| {
                            let n: usize = mine.iter().map(|d| d.iter().filter(|x| *x == t).count()).sum();
                            sum + ((n as f64 + 1.0) / (tokens + vocabulary) as f64).ln()
                        })
                    })
                    .collect();
                let answer = h.ok(&classify(&query));
                let class = usize::from(u16::from_le_bytes([answer[0], answer[1]]));
                let score = f64::from_le_bytes(answer[2..10].try_into().unwrap());
                let best = log_joint.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                prop_assert!((score - best).abs() < 1e-9 * (1.0 + best.abs()));
                let mut sorted = log_joint.clone();
                sorted.sort_by(|a, b| b.partial_cmp(a).unwrap());
                let margin = sorted.get(1).map_or(f64::INFINITY, |second| best - second);
                if margin > 1e-9 * (1.0 + best.abs()) {
                    prop_assert_eq!(log_joint[class], best);
                }
            }
        }
    }
}
