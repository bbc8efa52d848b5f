//! BM25: ranks the documents of an in-memory inverted index against a text query (Okapi BM25,
//! Robertson and Zaragoza's form with `idf = ln((N - df + 0.5) / (df + 0.5) + 1)`).
//!
//! Text is split into terms at every byte that is not an ASCII letter or digit and folded to
//! lower case; terms longer than [`MAX_TERM`] bytes are skipped. The index (vocabulary,
//! postings, per-document length norms) is built at deploy time; a query accumulates scores in
//! a scratch array allocated then and selects the top K by partitioning. Request format:
//! docs/services.md, section BM25.

use alloc::vec::Vec;
use core::fmt;

use super::topranker::{rank, top_k};
use crate::codec::{Request, Response};
use crate::collections::{Bytes, ReliableMap};
use crate::kind::ServiceKind;
use crate::service::{Context, Service, ServiceError, ServiceId, ServiceIdentity};

/// Longest term indexed, in bytes.
pub const MAX_TERM: usize = 32;

/// Request builders (client side; they allocate).
pub mod request {
    use crate::codec::RequestBuilder;
    use alloc::vec::Vec;

    /// The `k` best documents for `query`.
    pub fn search(k: u16, query: &[u8]) -> Vec<u8> {
        RequestBuilder::default()
            .u16(k)
            .u16(query.len() as u16)
            .bytes(query)
            .build()
    }
}

/// Why an index could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bm25Error {
    /// No document, or more than `u32::MAX` documents or terms.
    Size,
    /// `k1` negative or `b` outside `[0, 1]`.
    Parameters,
}

impl fmt::Display for Bm25Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bm25Error::Size => "no document, or too many documents or terms",
            Bm25Error::Parameters => "k1 must be non-negative and b within [0, 1]",
        })
    }
}

/// The BM25 free parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bm25Config {
    /// Term-frequency saturation.
    pub k1: f64,
    /// Document-length normalisation.
    pub b: f64,
}

impl Default for Bm25Config {
    fn default() -> Self {
        Self { k1: 1.2, b: 0.75 }
    }
}

/// One term folded to lower case.
type Term = Bytes<MAX_TERM>;

/// The terms of `text`, lower-cased; over-long ones are skipped.
pub fn terms(text: &[u8]) -> impl Iterator<Item = Term> + '_ {
    text.split(|b| !b.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty() && word.len() <= MAX_TERM)
        .filter_map(|word| {
            let mut lowered = [0u8; MAX_TERM];
            for (low, byte) in lowered.iter_mut().zip(word) {
                *low = byte.to_ascii_lowercase();
            }
            Term::new(&lowered[..word.len()])
        })
}

/// The BM25 service.
pub struct Bm25 {
    identity: ServiceIdentity,
    k1: f64,
    vocabulary: ReliableMap<Term, u32>,
    idf: Vec<f64>,
    /// Postings of term `t` are `postings[offsets[t]..offsets[t + 1]]`: (document, frequency).
    offsets: Vec<u32>,
    postings: Vec<(u32, u32)>,
    /// `k1 * (1 - b + b * length / average length)` per document.
    norms: Vec<f64>,
    scores: Vec<f64>,
    ranked: Vec<(f64, u32)>,
}

impl Bm25 {
    /// Heap bytes indexing `documents` documents holding `terms` terms in all takes (the
    /// vocabulary sized for every term being new, the term-document pairs, the postings and
    /// the per-term and per-document arrays), besides the documents themselves.
    pub const fn footprint(documents: usize, terms: usize) -> usize {
        ReliableMap::<Term, u32>::bytes_for(terms)
            + 2 * terms * size_of::<(u32, u32)>()
            + (terms + 1) * (size_of::<u32>() + size_of::<f64>())
            + documents * (3 * size_of::<f64>() + size_of::<(f64, u32)>())
    }

    /// Indexes `documents` (document `i` is answered as id `i`).
    pub fn index(
        id: ServiceId,
        documents: &[&[u8]],
        config: Bm25Config,
    ) -> Result<Self, Bm25Error> {
        if !(config.k1 >= 0.0 && (0.0..=1.0).contains(&config.b)) {
            return Err(Bm25Error::Parameters);
        }
        let count = u32::try_from(documents.len()).map_err(|_| Bm25Error::Size)?;
        if count == 0 {
            return Err(Bm25Error::Size);
        }
        let total_terms: usize = documents.iter().map(|d| terms(d).count()).sum();
        let mut vocabulary = ReliableMap::with_capacity(total_terms, 0x626d_3235);
        let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(total_terms);
        let mut lengths = Vec::with_capacity(documents.len());
        for (doc, text) in (0u32..).zip(documents) {
            let mut length = 0u32;
            for term in terms(text) {
                let next = vocabulary.len() as u32;
                let (&mut id, _) = vocabulary
                    .get_or_insert_with(term.as_slice(), || (term.clone(), next))
                    .map_err(|_| Bm25Error::Size)?;
                pairs.push((id, doc));
                length += 1;
            }
            lengths.push(f64::from(length));
        }
        pairs.sort_unstable();
        // Postings in term order, merged per (term, document); `offsets[t + 1]` ends term t.
        let mut offsets = alloc::vec![0u32; vocabulary.len() + 1];
        let mut postings: Vec<(u32, u32)> = Vec::with_capacity(pairs.len());
        let mut previous = None;
        for (term, doc) in pairs {
            match postings.last_mut() {
                Some(last) if previous == Some((term, doc)) => last.1 += 1,
                _ => postings.push((doc, 1)),
            }
            offsets[term as usize + 1] = postings.len() as u32;
            previous = Some((term, doc));
        }
        let n = f64::from(count);
        let idf = offsets
            .windows(2)
            .map(|w| {
                let df = f64::from(w[1] - w[0]);
                libm::log((n - df + 0.5) / (df + 0.5) + 1.0)
            })
            .collect();
        let average = lengths.iter().sum::<f64>() / n;
        let norms = lengths
            .iter()
            .map(|&len| {
                let relative = if average > 0.0 { len / average } else { 0.0 };
                config.k1 * (1.0 - config.b + config.b * relative)
            })
            .collect();
        Ok(Self {
            identity: ServiceIdentity::new(id, ServiceKind::Bm25, 512, 30_000),
            k1: config.k1,
            vocabulary,
            idf,
            offsets,
            postings,
            norms,
            scores: alloc::vec![0.0; documents.len()],
            ranked: Vec::with_capacity(documents.len()),
        })
    }
}

impl Service for Bm25 {
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
        let len = usize::from(request.u16()?);
        let query = request.bytes(len)?;
        let mut out = Response::new(response)?;
        if out.space() < 2 + 12 * k.min(self.scores.len()) {
            return Err(ServiceError::ResponseTooSmall);
        }
        self.ranked.clear();
        for term in terms(query) {
            let Some(&t) = self.vocabulary.get(term.as_slice()) else {
                continue;
            };
            let t = t as usize;
            let idf = self.idf[t];
            let postings = &self.postings[self.offsets[t] as usize..self.offsets[t + 1] as usize];
            for &(doc, frequency) in postings {
                let f = f64::from(frequency);
                let score = &mut self.scores[doc as usize];
                if *score == 0.0 {
                    self.ranked.push((0.0, doc));
                }
                *score += idf * (f * (self.k1 + 1.0)) / (f + self.norms[doc as usize]);
            }
        }
        for entry in self.ranked.iter_mut() {
            entry.0 = core::mem::take(&mut self.scores[entry.1 as usize]);
        }
        let best = top_k(&mut self.ranked, k, rank);
        out.u16(best.len() as u16)?;
        for &(score, doc) in best {
            out.u32(doc)?.f64(score)?;
        }
        Ok(out.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::request::search;
    use super::*;
    use crate::services::testing::Harness;
    use proptest::prelude::*;

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

    const CORPUS: [&[u8]; 4] = [
        b"The quick brown fox",
        b"the lazy dog",
        b"the QUICK dog jumps over the lazy fox",
        b"a brown dog",
    ];

    #[test]
    fn textbook_scores_on_a_small_corpus() {
        // By hand. Terms per document: 0 "the quick brown fox" (4), 1 "the lazy dog" (3),
        // 2 "the quick dog jumps over the lazy fox" (8), 3 "a brown dog" (3); N = 4,
        // avgdl = 18 / 4 = 4.5. With k1 = 1.2 and b = 0.75 the length norm of a document of
        // |D| terms is K = k1 * (1 - b + b * |D| / avgdl) = 1.2 * (0.25 + |D| / 6)
        // = 0.3 + 0.2 * |D|: K0 = 1.1, K1 = 0.9, K2 = 1.9, K3 = 0.9. A term of frequency f
        // weighs idf * f * (k1 + 1) / (f + K) = idf * 2.2 f / (f + K).
        // idf = ln((N - df + 0.5) / (df + 0.5) + 1): df 2 gives ln(2.5 / 2.5 + 1) = ln 2,
        // df 3 gives ln(1.5 / 3.5 + 1) = ln(10 / 7).
        let (ln2, ln10_7) = (2f64.ln(), (10f64 / 7.0).ln());
        let mut h =
            Harness::new(Bm25::index(ServiceId(1), &CORPUS, Bm25Config::default()).unwrap());
        // "quick" (df 2, idf ln 2) and "dog" (df 3, idf ln 10/7), each f = 1 where present:
        // doc 2: (ln 2 + ln 10/7) * 2.2 / 2.9 = ln(20/7) * 22/29 = 0.79642
        // doc 0: ln 2 * 2.2 / 2.1 = 0.72615 (quick only)
        // docs 1 and 3: ln(10/7) * 2.2 / 1.9 = 0.41299 each (dog only; the tie goes to the
        // lower document).
        let quick_dog = [
            (2, (ln2 + ln10_7) * 22.0 / 29.0),
            (0, ln2 * 22.0 / 21.0),
            (1, ln10_7 * 22.0 / 19.0),
            (3, ln10_7 * 22.0 / 19.0),
        ];
        // "the" (docs 0, 1, 2: df 3, idf ln 10/7; f = 2 in doc 2) and "fox" (docs 0 and 2:
        // df 2, idf ln 2):
        // doc 0: (ln 10/7 + ln 2) * 2.2 / 2.1 = 1.09981
        // doc 2: ln(10/7) * 4.4 / 3.9 + ln 2 * 2.2 / 2.9 = 0.40240 + 0.52584 = 0.92824
        // doc 1: ln(10/7) * 2.2 / 1.9 = 0.41299; doc 3 has neither.
        let the_fox = [
            (0, (ln10_7 + ln2) * 22.0 / 21.0),
            (2, ln10_7 * 44.0 / 39.0 + ln2 * 22.0 / 29.0),
            (1, ln10_7 * 22.0 / 19.0),
        ];
        for (query, expected) in [
            (&b"quick, dog!"[..], &quick_dog[..]),
            (b"the FOX", &the_fox),
        ] {
            let got = decode(&h.ok(&search(10, query)));
            assert_eq!(got.len(), expected.len());
            for ((doc, score), (want_doc, want)) in got.iter().zip(expected) {
                assert_eq!(doc, want_doc);
                assert!((score - want).abs() < 1e-12, "{score} vs {want}");
            }
        }
        assert!((quick_dog[0].1 - 0.796_42).abs() < 1e-5 && (the_fox[1].1 - 0.928_24).abs() < 1e-5);
        let best = decode(&h.ok(&search(1, b"dog QUICK")));
        assert!(best.len() == 1 && best[0].0 == 2 && (best[0].1 - quick_dog[0].1).abs() < 1e-12);
        assert!(decode(&h.ok(&search(5, b"cat"))).is_empty());
    }

    /// The terms of `text` as docs/services.md defines them: runs of ASCII letters and
    /// digits, lower-cased, those over 32 bytes dropped.
    fn words(text: &[u8]) -> Vec<Vec<u8>> {
        text.split(|b| !b.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty() && w.len() <= 32)
            .map(|w| w.to_ascii_lowercase())
            .collect()
    }

    /// BM25 straight from its definition, document by document.
    fn naive(docs: &[Vec<u8>], query: &[u8], k1: f64, b: f64) -> Vec<(u32, f64)> {
        let tokenised: Vec<Vec<Vec<u8>>> = docs.iter().map(|d| words(d)).collect();
        let n = docs.len() as f64;
        let average = tokenised.iter().map(|d| d.len()).sum::<usize>() as f64 / n;
        let mut scored = Vec::new();
        for (i, doc) in tokenised.iter().enumerate() {
            let mut score = 0.0;
            let mut matched = false;
            for q in words(query) {
                let df = tokenised.iter().filter(|d| d.contains(&q)).count() as f64;
                let f = doc.iter().filter(|t| **t == q).count() as f64;
                if f > 0.0 {
                    matched = true;
                    let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
                    let relative = if average > 0.0 {
                        doc.len() as f64 / average
                    } else {
                        0.0
                    };
                    score += idf * (f * (k1 + 1.0)) / (f + k1 * (1.0 - b + b * relative));
                }
            }
            if matched {
                scored.push((score, i as u32));
            }
        }
        scored.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then(a.1.cmp(&b.1)));
        scored.into_iter().map(|(s, d)| (d, s)).collect()
    }

    proptest! {
        #[test]
        fn agrees_with_the_definition(
            docs in proptest::collection::vec(proptest::collection::vec(0usize..8, 0..12), 1..12),
            query in proptest::collection::vec(0usize..8, 0..5),
            k in 0u16..15,
        ) {
            let vocabulary = ["alpha", "Beta", "GAMMA", "delta", "e2", "zeta", "unknown",
                "a-word-of-more-than-thirty-two-bytes-is-skipped"];
            let separators = [" ", ", ", "-", "\n", "!?"];
            let render = |ids: &[usize]| {
                let mut text = String::new();
                for (n, &i) in ids.iter().enumerate() {
                    text.push_str(vocabulary[i % vocabulary.len()]);
                    text.push_str(separators[(n + i) % separators.len()]);
                }
                text.into_bytes()
            };
            let docs: Vec<Vec<u8>> = docs.iter().map(|d| render(d)).collect();
            let refs: Vec<&[u8]> = docs.iter().map(|d| &d[..]).collect();
            let mut h = Harness::new(Bm25::index(ServiceId(1), &refs, Bm25Config::default()).unwrap());
            let query = render(&query);
            let got = decode(&h.ok(&search(k, &query)));
            let expected = naive(&docs, &query, 1.2, 0.75);
            prop_assert_eq!(got.len(), expected.len().min(usize::from(k)));
            for ((doc, score), (want_doc, want)) in got.iter().zip(&expected) {
                prop_assert!((score - want).abs() < 1e-9);
                // Documents may only swap places where scores tie to rounding.
                if (score - want).abs() > 0.0 || doc != want_doc {
                    prop_assert!(expected.iter().any(|(d, s)| d == doc && (s - score).abs() < 1e-9));
                }
            }
        }
    }

    #[test]
    fn bad_requests_and_indexes() {
        assert_eq!(
            Bm25::index(ServiceId(1), &[], Bm25Config::default()).err(),
            Some(Bm25Error::Size)
        );
        assert_eq!(
            Bm25::index(ServiceId(1), &CORPUS, Bm25Config { k1: 1.0, b: 2.0 }).err(),
            Some(Bm25Error::Parameters)
        );
        let mut h =
            Harness::new(Bm25::index(ServiceId(1), &CORPUS, Bm25Config::default()).unwrap());
        assert_eq!(h.err(&[1, 0, 9, 0, b'a']), ServiceError::BadLength);
        assert_eq!(h.err(&[1, 0, 9]), ServiceError::Truncated);
        let long_word = [b'x'; 40];
        assert!(decode(&h.ok(&search(3, &long_word))).is_empty());
    }
}
