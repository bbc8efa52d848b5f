//! EMA: exponential moving averages over many numeric streams.
//!
//! `ema = x` for a stream's first sample, then `ema = alpha * x + (1 - alpha) * ema`. Sample
//! counts go through the fetch-and-add engine. Request format: docs/services.md, section EMA.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::codec::{Request, Response};
use crate::collections::{ReliableMap, SnapshotReader, SnapshotWriter};
use crate::kind::ServiceKind;
use crate::service::{Context, Service, ServiceError, ServiceId, ServiceIdentity, StateError};

/// Operation codes (first request byte).
pub mod op {
    /// Feed samples to a stream.
    pub const UPDATE: u8 = 1;
    /// Read a stream's average.
    pub const GET: u8 = 2;
}

/// Request builders (client side; they allocate).
pub mod request {
    use super::op;
    use crate::codec::RequestBuilder;
    use alloc::vec::Vec;

    /// Feed `samples` to `stream`.
    pub fn update(stream: u32, samples: &[f32]) -> Vec<u8> {
        RequestBuilder::new(op::UPDATE)
            .u32(stream)
            .list(samples, |b, &s| b.f32(s))
            .build()
    }

    /// Read `stream`'s average.
    pub fn get(stream: u32) -> Vec<u8> {
        RequestBuilder::new(op::GET).u32(stream).build()
    }
}

const STATE_VERSION: u8 = 1;

/// Deploy-time configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EmaConfig {
    /// Most streams tracked at once.
    pub streams: usize,
    /// Weight of a new sample, in (0, 1].
    pub alpha: f64,
    /// Seed of the stream table's hash function.
    pub seed: u64,
}

impl Default for EmaConfig {
    fn default() -> Self {
        Self {
            streams: 4096,
            alpha: 0.125,
            seed: 0x656d_615f_7365_6564,
        }
    }
}

/// The EMA service.
pub struct Ema {
    identity: ServiceIdentity,
    alpha: f64,
    /// Stream id -> (average, samples seen).
    streams: ReliableMap<u32, (f64, AtomicU64)>,
}

impl Ema {
    /// Heap bytes an instance with `config` allocates.
    pub const fn footprint(config: &EmaConfig) -> usize {
        ReliableMap::<u32, (f64, AtomicU64)>::bytes_for(config.streams)
    }

    /// An EMA instance with no stream; `alpha` is clamped into (0, 1].
    pub fn new(id: ServiceId, config: EmaConfig) -> Self {
        let alpha = if config.alpha > 0.0 && config.alpha <= 1.0 {
            config.alpha
        } else {
            1.0
        };
        Self {
            identity: ServiceIdentity::new(id, ServiceKind::Ema, 512, 400),
            alpha,
            streams: ReliableMap::with_capacity(config.streams, config.seed),
        }
    }
}

fn answer(response: &mut [u8], state: &(f64, AtomicU64)) -> Result<usize, ServiceError> {
    let mut out = Response::new(response)?;
    out.f64(state.0)?.u64(state.1.load(Ordering::Relaxed))?;
    Ok(out.finish())
}

impl Service for Ema {
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
        match request.u8()? {
            op::UPDATE => {
                let stream = request.u32()?;
                let n = usize::from(request.u16()?);
                let samples = request.records(n, 4)?;
                let values = samples
                    .chunks_exact(4)
                    .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
                if n == 0 || values.clone().any(|v| !v.is_finite()) {
                    return Err(ServiceError::BadField);
                }
                if response.len() < 17 {
                    return Err(ServiceError::ResponseTooSmall);
                }
                let (state, fresh) = self
                    .streams
                    .get_or_insert_with(&stream, || (stream, (0.0, AtomicU64::new(0))))
                    .map_err(|_| ServiceError::Full)?;
                let mut values = values;
                if fresh {
                    state.0 = values.next().unwrap_or(0.0);
                }
                let alpha = self.alpha;
                state.0 = values.fold(state.0, |ema, x| alpha * x + (1.0 - alpha) * ema);
                ctx.engines.atomics().fetch_add(&state.1, n as u64);
                answer(response, state)
            }
            op::GET => {
                let stream = request.u32()?;
                let state = self.streams.get(&stream).ok_or(ServiceError::NotFound)?;
                answer(response, state)
            }
            _ => Err(ServiceError::BadOpcode),
        }
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        let mut w = SnapshotWriter::new(out, ServiceKind::Ema, STATE_VERSION);
        w.record(&self.alpha);
        self.streams.snapshot(&mut w);
        w.finish();
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateError> {
        let mut r = SnapshotReader::open(snapshot, ServiceKind::Ema, STATE_VERSION)?;
        let alpha: f64 = r.record()?;
        let streams = self.streams.decode_like(&mut r)?;
        r.finish()?;
        if alpha != self.alpha || streams.iter().any(|(_, (ema, _))| !ema.is_finite()) {
            return Err(StateError::Corrupt);
        }
        self.streams = streams;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::request::{get, update};
    use super::*;
    use crate::services::testing::Harness;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn ema(streams: usize) -> Harness<Ema> {
        Harness::new(Ema::new(
            ServiceId(1),
            EmaConfig {
                streams,
                alpha: 0.25,
                seed: 3,
            },
        ))
    }

    fn decode(answer: &[u8]) -> (f64, u64) {
        (
            f64::from_le_bytes(answer[..8].try_into().unwrap()),
            u64::from_le_bytes(answer[8..16].try_into().unwrap()),
        )
    }

    /// The closed form: x1 weighted (1-a)^(n-1), xk weighted a(1-a)^(n-k) for k >= 2.
    fn closed_form(alpha: f64, xs: &[f64]) -> f64 {
        let n = xs.len();
        xs.iter()
            .enumerate()
            .map(|(k, x)| {
                let weight = if k == 0 { 1.0 } else { alpha };
                weight * (1.0 - alpha).powi((n - 1 - k) as i32) * x
            })
            .sum()
    }

    #[test]
    fn matches_the_closed_form_across_batches() {
        let mut h = ema(4);
        let xs: Vec<f32> = (0..300).map(|i| ((i * 37) % 101) as f32 - 50.0).collect();
        let mut seen = Vec::new();
        for batch in xs.chunks(23) {
            seen.extend(batch.iter().map(|&x| f64::from(x)));
            let (value, count) = decode(&h.ok(&update(9, batch)));
            assert!((value - closed_form(0.25, &seen)).abs() < 1e-9);
            assert_eq!(count, seen.len() as u64);
        }
        assert_eq!(decode(&h.ok(&get(9))).1, 300);
        assert_eq!(h.err(&get(8)), ServiceError::NotFound);
    }

    #[test]
    fn bad_requests_and_full_table() {
        let mut h = ema(1);
        assert_eq!(h.err(&update(1, &[])), ServiceError::BadField);
        assert_eq!(h.err(&update(1, &[1.0, f32::NAN])), ServiceError::BadField);
        assert_eq!(h.err(&update(1, &[1.0])[..8]), ServiceError::BadLength);
        assert_eq!(h.err(&[op::GET, 1]), ServiceError::Truncated);
        assert_eq!(h.err(&[7]), ServiceError::BadOpcode);
        h.ok(&update(1, &[1.0]));
        assert_eq!(h.err(&update(2, &[1.0])), ServiceError::Full);
        assert_eq!(h.err(&get(1)[..3]), ServiceError::Truncated);
    }

    #[test]
    fn snapshot_restore_gives_identical_answers() {
        let mut h = ema(16);
        for s in 0..10 {
            h.ok(&update(s, &[s as f32, 2.0 * s as f32, -1.0]));
        }
        let mut other = ema(16);
        h.migrate_to(&mut other);
        for s in 0..12 {
            assert_eq!(h.answer(&get(s)), other.answer(&get(s)));
            assert_eq!(
                h.answer(&update(s, &[4.5])),
                other.answer(&update(s, &[4.5]))
            );
        }
        let mut different = Harness::new(Ema::new(
            ServiceId(2),
            EmaConfig {
                streams: 16,
                alpha: 0.5,
                seed: 3,
            },
        ));
        let mut bytes = Vec::new();
        h.service.snapshot(&mut bytes);
        assert_eq!(different.service.restore(&bytes), Err(StateError::Corrupt));
    }

    proptest! {
        /// Random updates and reads of a few streams, with random alpha and capacity, against
        /// the closed form over every sample each stream has seen.
        #[test]
        fn agrees_with_the_closed_form_per_stream(
            eighths in 1u8..=8,
            capacity in 1usize..5,
            ops in proptest::collection::vec((
                0u32..6,
                proptest::collection::vec(-100i16..100, 0..20),
                proptest::option::weighted(0.1, any::<usize>()),
                proptest::bool::weighted(0.3),
            ), 1..40),
        ) {
            let alpha = f64::from(eighths) / 8.0;
            let mut h = Harness::new(Ema::new(
                ServiceId(1),
                EmaConfig { streams: capacity, alpha, seed: 7 },
            ));
            let mut seen: HashMap<u32, Vec<f64>> = HashMap::new();
            for (stream, samples, nan_at, read) in ops {
                if read {
                    match seen.get(&stream) {
                        Some(xs) => {
                            let (value, count) = decode(&h.ok(&get(stream)));
                            prop_assert!((value - closed_form(alpha, xs)).abs() < 1e-9);
                            prop_assert_eq!(count, xs.len() as u64);
                        }
                        None => prop_assert_eq!(h.err(&get(stream)), ServiceError::NotFound),
                    }
                    continue;
                }
                let mut samples: Vec<f32> = samples.iter().map(|&x| f32::from(x)).collect();
                if let (Some(at), false) = (nan_at, samples.is_empty()) {
                    let at = at % samples.len();
                    samples[at] = f32::NAN;
                }
                let request = update(stream, &samples);
                if samples.is_empty() || samples.iter().any(|x| x.is_nan()) {
                    prop_assert_eq!(h.err(&request), ServiceError::BadField);
                } else if !seen.contains_key(&stream) && seen.len() == capacity {
                    prop_assert_eq!(h.err(&request), ServiceError::Full);
                } else {
                    let xs = seen.entry(stream).or_default();
                    xs.extend(samples.iter().map(|&x| f64::from(x)));
                    let (value, count) = decode(&h.ok(&request));
                    prop_assert!((value - closed_form(alpha, xs)).abs() < 1e-9);
                    prop_assert_eq!(count, xs.len() as u64);
                }
            }
        }
    }
}
