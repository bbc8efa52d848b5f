//! Recommend: user-based collaborative filtering over a user x item rating matrix.
//!
//! Ratings come explicitly (RATE) or implicitly from text a user viewed (VIEW): the pattern
//! engine finds the catalogue's item names in it and each occurrence bumps that item's rating
//! by one, up to 5. RECOMMEND scores each item the user has not rated by the ratings of the
//! users most like them: `score(i) = sum(sim(u, v) * r(v, i)) / sum(sim(u, v))` over users `v`
//! with positive cosine similarity who rated `i`. Ratings live in reliable collections; the
//! scratch space is allocated at deploy time. Request format: docs/services.md, section
//! Recommend.

use alloc::vec::Vec;

use super::topranker::{rank, top_k};
use crate::codec::{Request, Response};
use crate::collections::{ReliableArray, ReliableMap, SnapshotReader, SnapshotWriter};
use crate::engines::{PatternError, PatternSet};
use crate::kind::ServiceKind;
use crate::service::{Context, Service, ServiceError, ServiceId, ServiceIdentity, StateError};

/// Highest rating.
pub const MAX_RATING: f32 = 5.0;

/// Operation codes (first request byte).
pub mod op {
    /// Rate items implicitly from text the user viewed.
    pub const VIEW: u8 = 1;
    /// Rate items explicitly.
    pub const RATE: u8 = 2;
    /// Recommend items to a user.
    pub const RECOMMEND: u8 = 3;
}

/// Request builders (client side; they allocate).
pub mod request {
    use super::op;
    use crate::codec::RequestBuilder;
    use alloc::vec::Vec;

    /// `user` viewed `text`.
    pub fn view(user: u32, text: &[u8]) -> Vec<u8> {
        RequestBuilder::new(op::VIEW)
            .u32(user)
            .u16(text.len() as u16)
            .bytes(text)
            .build()
    }

    /// `user` gave these `(item, rating)`s.
    pub fn rate(user: u32, ratings: &[(u16, f32)]) -> Vec<u8> {
        RequestBuilder::new(op::RATE)
            .u32(user)
            .list(ratings, |b, &(item, r)| b.u16(item).f32(r))
            .build()
    }

    /// The `k` best items for `user`.
    pub fn recommend(user: u32, k: u16) -> Vec<u8> {
        RequestBuilder::new(op::RECOMMEND).u32(user).u16(k).build()
    }
}

const STATE_VERSION: u8 = 1;

/// The Recommend service.
pub struct Recommend {
    identity: ServiceIdentity,
    catalogue: PatternSet,
    items: usize,
    /// User id -> row of `ratings`.
    users: ReliableMap<u32, u32>,
    /// `users x items`, row-major; 0 means not rated.
    ratings: ReliableArray<f32>,
    similarity: Vec<f64>,
    candidates: Vec<(f64, u32)>,
}

impl Recommend {
    /// Heap bytes a recommender over the items named `names`, for up to `users` users, takes.
    pub fn footprint<P: AsRef<[u8]>>(users: usize, names: &[P]) -> usize {
        let items = names.len();
        PatternSet::footprint(names)
            + ReliableMap::<u32, u32>::bytes_for(users)
            + ReliableArray::<f32>::bytes_for(users * items)
            + users * size_of::<f64>()
            + items * size_of::<(f64, u32)>()
    }

    /// A recommender over the items named `names` (item `i` is `names[i]`, at most 65536),
    /// for up to `users` users.
    pub fn new<I, P>(id: ServiceId, names: I, users: usize, seed: u64) -> Result<Self, PatternError>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        let catalogue = PatternSet::new(names)?;
        let items = catalogue.len();
        if items > usize::from(u16::MAX) + 1 {
            return Err(PatternError::TooLarge);
        }
        Ok(Self {
            identity: ServiceIdentity::new(id, ServiceKind::Recommend, 512, 250_000),
            catalogue,
            items,
            users: ReliableMap::with_capacity(users, seed),
            ratings: ReliableArray::filled(users * items, 0.0),
            similarity: alloc::vec![0.0; users],
            candidates: Vec::with_capacity(items),
        })
    }

    /// The row of `user`, created if new.
    fn row(&mut self, user: u32) -> Result<usize, ServiceError> {
        let next = self.users.len() as u32;
        let (&mut row, _) = self
            .users
            .get_or_insert_with(&user, || (user, next))
            .map_err(|_| ServiceError::Full)?;
        Ok(row as usize)
    }

    fn norm(ratings: &[f32]) -> f64 {
        libm::sqrt(ratings.iter().map(|&r| f64::from(r) * f64::from(r)).sum())
    }

    /// Fills `candidates` with the predicted scores of the items `row` has not rated.
    fn predict(&mut self, row: usize) {
        let (items, users) = (self.items, self.users.len());
        let ratings = &self.ratings;
        let of = |r: usize| &ratings[r * items..(r + 1) * items];
        let mine = of(row);
        let my_norm = Self::norm(mine);
        for (other, similarity) in self.similarity[..users].iter_mut().enumerate() {
            let theirs = of(other);
            let their_norm = Self::norm(theirs);
            *similarity = if other == row || my_norm == 0.0 || their_norm == 0.0 {
                0.0
            } else {
                let dot: f64 = mine
                    .iter()
                    .zip(theirs)
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum();
                dot / (my_norm * their_norm)
            };
        }
        self.candidates.clear();
        for item in (0..items).filter(|&item| mine[item] == 0.0) {
            let (mut weighted, mut weights) = (0.0, 0.0);
            for (other, &similarity) in self.similarity[..users].iter().enumerate() {
                let rating = ratings[other * items + item];
                if similarity > 0.0 && rating > 0.0 {
                    weighted += similarity * f64::from(rating);
                    weights += similarity;
                }
            }
            if weights > 0.0 {
                self.candidates.push((weighted / weights, item as u32));
            }
        }
    }
}

impl Service for Recommend {
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
        let operation = request.u8()?;
        if !matches!(operation, op::VIEW | op::RATE | op::RECOMMEND) {
            return Err(ServiceError::BadOpcode);
        }
        let user = request.u32()?;
        match operation {
            op::VIEW => {
                let len = usize::from(request.u16()?);
                let text = request.bytes(len)?;
                let mut out = Response::new(response)?;
                if out.space() < 2 {
                    return Err(ServiceError::ResponseTooSmall);
                }
                let row = self.row(user)?;
                let items = self.items;
                let ratings = &mut self.ratings[row * items..(row + 1) * items];
                let mut matches = 0u16;
                ctx.engines.pattern().scan(&self.catalogue, text, &mut |m| {
                    if let Some(r) = ratings.get_mut(m.pattern as usize) {
                        *r = (*r + 1.0).min(MAX_RATING);
                    }
                    matches = matches.saturating_add(1);
                    true
                });
                out.u16(matches)?;
                Ok(out.finish())
            }
            op::RATE => {
                let n = usize::from(request.u16()?);
                let records = request.records(n, 6)?;
                let pairs = records.chunks_exact(6).map(|c| {
                    (
                        usize::from(u16::from_le_bytes([c[0], c[1]])),
                        f32::from_le_bytes([c[2], c[3], c[4], c[5]]),
                    )
                });
                if pairs
                    .clone()
                    .any(|(item, r)| item >= self.items || !(0.0..=MAX_RATING).contains(&r))
                {
                    return Err(ServiceError::BadField);
                }
                let out = Response::new(response)?;
                let row = self.row(user)?;
                for (item, rating) in pairs {
                    self.ratings[row * self.items + item] = rating;
                }
                Ok(out.finish())
            }
            op::RECOMMEND => {
                let k = usize::from(request.u16()?);
                let &row = self.users.get(&user).ok_or(ServiceError::NotFound)?;
                let mut out = Response::new(response)?;
                if out.space() < 2 + 10 * k.min(self.items) {
                    return Err(ServiceError::ResponseTooSmall);
                }
                self.predict(row as usize);
                let best = top_k(&mut self.candidates, k, rank);
                out.u16(best.len() as u16)?;
                for &(score, item) in best {
                    out.u16(item as u16)?.f64(score)?;
                }
                Ok(out.finish())
            }
            _ => Err(ServiceError::BadOpcode),
        }
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        let mut w = SnapshotWriter::new(out, ServiceKind::Recommend, STATE_VERSION);
        w.count(self.items);
        self.users.snapshot(&mut w);
        self.ratings.snapshot(&mut w);
        w.finish();
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateError> {
        let mut r = SnapshotReader::open(snapshot, ServiceKind::Recommend, STATE_VERSION)?;
        if r.count(usize::MAX)? != self.items {
            return Err(StateError::WrongKind);
        }
        let users = self.users.decode_like(&mut r)?;
        let ratings = ReliableArray::<f32>::decode(&mut r, self.ratings.len())?;
        r.finish()?;
        let rows_distinct = {
            let mut seen = alloc::vec![false; users.len()];
            users
                .iter()
                .all(|(_, &row)| match seen.get_mut(row as usize) {
                    Some(s @ false) => {
                        *s = true;
                        true
                    }
                    _ => false,
                })
        };
        if !rows_distinct || ratings.iter().any(|r| !(0.0..=MAX_RATING).contains(r)) {
            return Err(StateError::Corrupt);
        }
        self.users = users;
        self.ratings = ratings;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::request::{rate, recommend, view};
    use super::*;
    use crate::services::testing::Harness;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashMap};

    const NAMES: [&str; 6] = ["laptop", "phone", "headphones", "tablet", "camera", "drone"];

    fn recommender(users: usize) -> Harness<Recommend> {
        Harness::new(Recommend::new(ServiceId(1), NAMES, users, 4).unwrap())
    }

    fn decode(answer: &[u8]) -> Vec<(u16, f64)> {
        let m = u16::from_le_bytes([answer[0], answer[1]]) as usize;
        assert_eq!(answer.len(), 2 + 10 * m);
        answer[2..]
            .chunks(10)
            .map(|c| {
                (
                    u16::from_le_bytes([c[0], c[1]]),
                    f64::from_le_bytes(c[2..].try_into().unwrap()),
                )
            })
            .collect()
    }

    /// Collaborative filtering from its definition, over nested hash maps.
    fn reference(ratings: &HashMap<u32, HashMap<u16, f32>>, user: u32) -> Vec<(u16, f64)> {
        let norm = |r: &HashMap<u16, f32>| {
            r.values()
                .map(|&x| f64::from(x) * f64::from(x))
                .sum::<f64>()
                .sqrt()
        };
        let mine = &ratings[&user];
        let mut sims = HashMap::new();
        for (&other, theirs) in ratings {
            if other != user && norm(mine) > 0.0 && norm(theirs) > 0.0 {
                let dot: f64 = mine
                    .iter()
                    .map(|(i, &a)| f64::from(a) * f64::from(*theirs.get(i).unwrap_or(&0.0)))
                    .sum();
                sims.insert(other, dot / (norm(mine) * norm(theirs)));
            }
        }
        let mut scored: Vec<(f64, u32)> = (0..NAMES.len() as u16)
            .filter(|i| mine.get(i).is_none_or(|&r| r == 0.0))
            .filter_map(|i| {
                let (mut num, mut den) = (0.0, 0.0);
                for (other, &s) in &sims {
                    let r = f64::from(*ratings[other].get(&i).unwrap_or(&0.0));
                    if s > 0.0 && r > 0.0 {
                        num += s * r;
                        den += s;
                    }
                }
                (den > 0.0).then(|| (num / den, u32::from(i)))
            })
            .collect();
        scored.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then(a.1.cmp(&b.1)));
        scored.into_iter().map(|(s, i)| (i as u16, s)).collect()
    }

    #[test]
    fn recommendations_follow_the_definition() {
        let mut h = recommender(16);
        let mut model: HashMap<u32, HashMap<u16, f32>> = HashMap::new();
        for user in 0..10u32 {
            let given: Vec<(u16, f32)> = (0..6u16)
                .filter(|i| (user + u32::from(*i)) % 3 != 0)
                .map(|i| (i, ((user * 7 + u32::from(i) * 3) % 5 + 1) as f32))
                .collect();
            h.ok(&rate(user, &given));
            model.entry(user).or_default().extend(given.iter().copied());
        }
        // Implicit ratings from viewed text go through the pattern engine.
        assert_eq!(
            h.ok(&view(
                3,
                b"Compared a tablet with a DRONE camera and a drone"
            )),
            [3, 0]
        );
        // Matching is case-sensitive: "DRONE" is not the item "drone".
        for item in [3, 4, 5] {
            let r = model.get_mut(&3).unwrap().entry(item).or_default();
            *r = (*r + 1.0).min(MAX_RATING);
        }
        for user in 0..10 {
            let got = decode(&h.ok(&recommend(user, 6)));
            let want = reference(&model, user);
            assert_eq!(got.len(), want.len());
            for ((gi, gs), (wi, ws)) in got.iter().zip(&want) {
                assert!((gs - ws).abs() < 1e-9);
                assert!(gi == wi || (gs - ws).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn bad_requests_full_and_migration() {
        let mut h = recommender(2);
        assert_eq!(h.err(&recommend(1, 3)), ServiceError::NotFound);
        assert_eq!(h.err(&rate(1, &[(6, 1.0)])), ServiceError::BadField);
        assert_eq!(h.err(&rate(1, &[(0, 6.0)])), ServiceError::BadField);
        assert_eq!(h.err(&rate(1, &[(0, f32::NAN)])), ServiceError::BadField);
        assert_eq!(
            h.err(&[op::VIEW, 1, 0, 0, 0, 5, 0, b'a']),
            ServiceError::BadLength
        );
        assert_eq!(h.err(&[op::VIEW, 1, 0]), ServiceError::Truncated);
        assert_eq!(h.err(&[9, 1, 0, 0, 0]), ServiceError::BadOpcode);
        assert_eq!(h.err(&[9]), ServiceError::BadOpcode);
        h.ok(&rate(1, &[(0, 5.0), (1, 3.0)]));
        h.ok(&rate(2, &[(0, 4.0), (2, 2.0)]));
        assert_eq!(h.err(&rate(3, &[(0, 1.0)])), ServiceError::Full);
        let mut other = recommender(2);
        h.migrate_to(&mut other);
        for user in [1, 2] {
            assert_eq!(h.ok(&recommend(user, 4)), other.ok(&recommend(user, 4)));
        }
        assert_eq!(decode(&h.ok(&recommend(1, 4))), [(2, 2.0)]);
    }

    /// A catalogue whose names overlap ("pod" inside "ipod" and "podcast").
    const OVERLAPPING: [&str; 6] = ["pod", "ipod", "podcast", "cam", "camera", "x"];

    #[derive(Clone, Debug)]
    enum Op {
        Rate(u32, Vec<(u16, f32)>),
        View(u32, Vec<u8>),
        Recommend(u32, u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        let ratings = [0.0f32, 1.0, 2.5, 4.0, 5.0, 6.0, -1.0];
        let pieces = [
            "pod", "ipod", "podcast", "cam", "camera", "x", " ", "the ", "IPOD", "po", "d",
        ];
        prop_oneof![
            3 => (0u32..6, proptest::collection::vec((0u16..7, 0..ratings.len()), 0..6))
                .prop_map(move |(user, pairs)| {
                    Op::Rate(user, pairs.iter().map(|&(i, r)| (i, ratings[r])).collect())
                }),
            2 => (0u32..6, proptest::collection::vec(0..pieces.len(), 0..12))
                .prop_map(move |(user, ids)| {
                    Op::View(user, ids.iter().flat_map(|&i| pieces[i].bytes()).collect())
                }),
            2 => (0u32..6, 0u16..8).prop_map(|(user, k)| Op::Recommend(user, k)),
        ]
    }

    /// Occurrences of `name` in `text`, overlapping ones included, by trying every offset.
    fn occurrences(text: &[u8], name: &[u8]) -> usize {
        (0..text.len())
            .filter(|&at| text[at..].starts_with(name))
            .count()
    }

    /// The predictions for `user` from the definition: cosine similarity over whole rows,
    /// then for each unrated item the similarity-weighted mean of positive-similarity users'
    /// ratings of it; best first, then the lower item.
    fn predictions(rows: &BTreeMap<u32, Vec<f32>>, user: u32) -> Vec<(u16, f64)> {
        let norm = |r: &[f32]| r.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
        let mine = &rows[&user];
        let mut scored = Vec::new();
        for item in (0..mine.len()).filter(|&i| mine[i] == 0.0) {
            let (mut num, mut den) = (0.0, 0.0);
            for (&other, theirs) in rows {
                if other == user || norm(mine) == 0.0 || norm(theirs) == 0.0 {
                    continue;
                }
                let dot: f64 = mine
                    .iter()
                    .zip(theirs)
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum();
                let similarity = dot / (norm(mine) * norm(theirs));
                if similarity > 0.0 && theirs[item] > 0.0 {
                    num += similarity * f64::from(theirs[item]);
                    den += similarity;
                }
            }
            if den > 0.0 {
                scored.push((num / den, item as u16));
            }
        }
        scored.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then(a.1.cmp(&b.1)));
        scored.into_iter().map(|(s, i)| (i, s)).collect()
    }

    proptest! {
        /// Random explicit ratings, viewed texts and recommendation requests over a catalogue
        /// of overlapping names, against a plain rating table: VIEW counts every occurrence by
        /// trying each offset, RECOMMEND follows the definition.
        #[test]
        fn agrees_with_a_plain_rating_table(
            capacity in 1usize..5,
            ops in proptest::collection::vec(op(), 1..40),
        ) {
            let items = OVERLAPPING.len();
            let mut h = Harness::new(Recommend::new(ServiceId(1), OVERLAPPING, capacity, 8).unwrap());
            let mut rows: BTreeMap<u32, Vec<f32>> = BTreeMap::new();
            for op in ops {
                let new_user = |rows: &BTreeMap<u32, Vec<f32>>, user| {
                    !rows.contains_key(&user) && rows.len() == capacity
                };
                match op {
                    Op::Rate(user, pairs) => {
                        let request = rate(user, &pairs);
                        if pairs.iter().any(|&(i, r)| usize::from(i) >= items || !(0.0..=5.0).contains(&r)) {
                            prop_assert_eq!(h.err(&request), ServiceError::BadField);
                        } else if new_user(&rows, user) {
                            prop_assert_eq!(h.err(&request), ServiceError::Full);
                        } else {
                            prop_assert!(h.ok(&request).is_empty());
                            let row = rows.entry(user).or_insert_with(|| vec![0.0; items]);
                            for (i, r) in pairs {
                                row[usize::from(i)] = r;
                            }
                        }
                    }
                    Op::View(user, text) => {
                        if new_user(&rows, user) {
                            prop_assert_eq!(h.err(&view(user, &text)), ServiceError::Full);
                            continue;
                        }
                        let row = rows.entry(user).or_insert_with(|| vec![0.0; items]);
                        let mut found = 0;
                        for (i, name) in OVERLAPPING.iter().enumerate() {
                            let n = occurrences(&text, name.as_bytes());
                            found += n;
                            row[i] = (row[i] + n as f32).min(MAX_RATING);
                        }
                        prop_assert_eq!(h.ok(&view(user, &text)), (found as u16).to_le_bytes());
                    }
                    Op::Recommend(user, k) => {
                        if !rows.contains_key(&user) {
                            prop_assert_eq!(h.err(&recommend(user, k)), ServiceError::NotFound);
                            continue;
                        }
                        let got = decode(&h.ok(&recommend(user, k)));
                        let want = predictions(&rows, user);
                        prop_assert_eq!(got.len(), want.len().min(usize::from(k)));
                        for ((gi, gs), (wi, ws)) in got.iter().zip(&want) {
                            prop_assert!((gs - ws).abs() < 1e-9);
                            // Items may only swap places where predictions tie to rounding.
                            prop_assert!(gi == wi || want.iter().any(|(i, s)| i == gi && (s - gs).abs() < 1e-9));
                        }
                    }
                }
            }
        }
    }
}
