//! Spike detection: a sample is a spike when its Z-score against the sensor's last `window`
//! samples exceeds the threshold.
//!
//! Each sensor keeps a reliable ring of its recent samples with their running sum and sum of
//! squares (recomputed exactly each time the ring wraps, so rounding cannot drift). Request
//! format: docs/services.md, section Spike.

use alloc::vec::Vec;

use crate::codec::{Request, Response};
use crate::collections::{ReliableArray, ReliableMap, SnapshotReader, SnapshotWriter};
use crate::kind::ServiceKind;
use crate::service::{Context, Service, ServiceError, ServiceId, ServiceIdentity, StateError};

/// Operation codes (first request byte).
pub mod op {
    /// Feed samples of one sensor; answers which were spikes.
    pub const OBSERVE: u8 = 1;
    /// Read a sensor's window statistics.
    pub const STATS: u8 = 2;
}

/// Request builders (client side; they allocate).
pub mod request {
    use super::op;
    use crate::codec::RequestBuilder;
    use alloc::vec::Vec;

    /// Feed `samples` of `sensor`.
    pub fn observe(sensor: u32, samples: &[f32]) -> Vec<u8> {
        RequestBuilder::new(op::OBSERVE)
            .u32(sensor)
            .list(samples, |b, &s| b.f32(s))
            .build()
    }

    /// Read `sensor`'s statistics.
    pub fn stats(sensor: u32) -> Vec<u8> {
        RequestBuilder::new(op::STATS).u32(sensor).build()
    }
}

const STATE_VERSION: u8 = 1;

/// Deploy-time configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpikeConfig {
    /// Most sensors tracked.
    pub sensors: usize,
    /// Samples per sensor window (2 or more); spikes are judged once it is full.
    pub window: usize,
    /// Z-score above which a sample is a spike.
    pub threshold: f64,
    /// Seed of the sensor table's hash function.
    pub seed: u64,
}

impl Default for SpikeConfig {
    fn default() -> Self {
        Self {
            sensors: 1024,
            window: 64,
            threshold: 3.0,
            seed: 0x7370_696b_6500_0000,
        }
    }
}

/// Position and sums of one sensor's ring: (head, filled, sum, sum of squares).
type Ring = (u32, u32, f64, f64);

/// The spike detection service.
pub struct Spike {
    identity: ServiceIdentity,
    window: usize,
    threshold: f64,
    /// Sensor id -> ring index.
    sensors: ReliableMap<u32, u32>,
    rings: ReliableArray<Ring>,
    samples: ReliableArray<f32>,
}

impl Spike {
    /// Heap bytes an instance with `config` allocates.
    pub fn footprint(config: &SpikeConfig) -> usize {
        let (sensors, window) = (config.sensors.max(1), config.window.max(2));
        ReliableMap::<u32, u32>::bytes_for(sensors)
            + ReliableArray::<Ring>::bytes_for(sensors)
            + ReliableArray::<f32>::bytes_for(sensors * window)
    }

    /// A detector with no sensor.
    pub fn new(id: ServiceId, config: SpikeConfig) -> Self {
        let window = config.window.max(2);
        let sensors = config.sensors.max(1);
        Self {
            identity: ServiceIdentity::new(id, ServiceKind::Spike, 512, 700),
            window,
            threshold: config.threshold,
            sensors: ReliableMap::with_capacity(sensors, config.seed),
            rings: ReliableArray::filled(sensors, (0, 0, 0.0, 0.0)),
            samples: ReliableArray::filled(sensors * window, 0.0),
        }
    }

    fn mean_and_deviation(ring: &Ring) -> (f64, f64) {
        let n = f64::from(ring.1.max(1));
        let mean = ring.2 / n;
        let variance = (ring.3 / n - mean * mean).max(0.0);
        (mean, libm::sqrt(variance))
    }

    /// Judges `x` against ring `index`, then adds it; whether it was a spike.
    fn push(&mut self, index: usize, x: f64) -> bool {
        let window = &mut self.samples[index * self.window..(index + 1) * self.window];
        let ring = &mut self.rings[index];
        let spike = ring.1 as usize == self.window && {
            let (mean, deviation) = Self::mean_and_deviation(ring);
            if deviation > 0.0 {
                libm::fabs(x - mean) / deviation > self.threshold
            } else {
                x != mean
            }
        };
        let head = ring.0 as usize;
        if ring.1 as usize == self.window {
            let old = f64::from(window[head]);
            ring.2 -= old;
            ring.3 -= old * old;
        } else {
            ring.1 += 1;
        }
        // Samples arrive as f32; storing them as f32 loses nothing.
        window[head] = x as f32;
        ring.2 += x;
        ring.3 += x * x;
        ring.0 = ((head + 1) % self.window) as u32;
        if ring.0 == 0 {
            let filled = &window[..ring.1 as usize];
            ring.2 = filled.iter().map(|&v| f64::from(v)).sum();
            ring.3 = filled.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        }
        spike
    }
}

impl Service for Spike {
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
            op::OBSERVE => {
                let sensor = request.u32()?;
                let n = usize::from(request.u16()?);
                let samples = request.records(n, 4)?;
                let values = samples
                    .chunks_exact(4)
                    .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
                if values.clone().any(|v| !v.is_finite()) {
                    return Err(ServiceError::BadField);
                }
                let mut out = Response::new(response)?;
                if out.space() < 2 + 2 * n {
                    return Err(ServiceError::ResponseTooSmall);
                }
                let next = self.sensors.len() as u32;
                let (&mut index, _) = self
                    .sensors
                    .get_or_insert_with(&sensor, || (sensor, next))
                    .map_err(|_| ServiceError::Full)?;
                // The spike count, patched once known.
                out.u16(0)?;
                let mut spikes = 0u16;
                for (i, x) in values.enumerate() {
                    if self.push(index as usize, x) {
                        spikes += 1;
                        out.u16(i as u16)?;
                    }
                }
                let len = out.finish();
                response[1..3].copy_from_slice(&spikes.to_le_bytes());
                Ok(len)
            }
            op::STATS => {
                let sensor = request.u32()?;
                let &index = self.sensors.get(&sensor).ok_or(ServiceError::NotFound)?;
                let ring = &self.rings[index as usize];
                let (mean, deviation) = Self::mean_and_deviation(ring);
                let mut out = Response::new(response)?;
                out.f64(mean)?.f64(deviation)?.u32(ring.1)?;
                Ok(out.finish())
            }
            _ => Err(ServiceError::BadOpcode),
        }
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        let mut w = SnapshotWriter::new(out, ServiceKind::Spike, STATE_VERSION);
        w.count(self.window);
        self.sensors.snapshot(&mut w);
        self.rings.snapshot(&mut w);
        self.samples.snapshot(&mut w);
        w.finish();
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateError> {
        let mut r = SnapshotReader::open(snapshot, ServiceKind::Spike, STATE_VERSION)?;
        if r.count(usize::MAX)? != self.window {
            return Err(StateError::WrongKind);
        }
        let sensors = self.sensors.decode_like(&mut r)?;
        let rings = ReliableArray::<Ring>::decode(&mut r, self.rings.len())?;
        let samples = ReliableArray::decode(&mut r, self.samples.len())?;
        r.finish()?;
        // Sensors own distinct rings 0..len; rings stay within the window.
        let mut owned = alloc::vec![false; sensors.len()];
        for (_, &index) in sensors.iter() {
            match owned.get_mut(index as usize) {
                Some(slot @ false) => *slot = true,
                _ => return Err(StateError::Corrupt),
            }
        }
        let window = self.window as u32;
        if rings
            .iter()
            .any(|&(head, filled, _, _)| head >= window || filled > window)
        {
            return Err(StateError::Corrupt);
        }
        self.sensors = sensors;
        self.rings = rings;
        self.samples = samples;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::request::{observe, stats};
    use super::*;
    use crate::services::testing::Harness;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn spike(sensors: usize) -> Harness<Spike> {
        Harness::new(Spike::new(
            ServiceId(1),
            SpikeConfig {
                sensors,
                window: 32,
                threshold: 3.0,
                seed: 1,
            },
        ))
    }

    fn spikes(answer: &[u8]) -> Vec<u16> {
        let n = u16::from_le_bytes([answer[0], answer[1]]) as usize;
        assert_eq!(answer.len(), 2 + 2 * n);
        answer[2..]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect()
    }

    /// Z-scores recomputed from scratch over the previous 32 samples (two-pass).
    fn reference(history: &[f32], threshold: f64) -> Vec<bool> {
        (0..history.len())
            .map(|i| {
                if i < 32 {
                    return false;
                }
                let w: Vec<f64> = history[i - 32..i].iter().map(|&v| f64::from(v)).collect();
                let mean = w.iter().sum::<f64>() / 32.0;
                let sd = (w.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 32.0).sqrt();
                ((f64::from(history[i]) - mean) / sd).abs() > threshold
            })
            .collect()
    }

    #[test]
    fn detects_the_injected_spikes_like_a_recount() {
        let mut h = spike(4);
        let mut history = Vec::new();
        let mut found = Vec::new();
        for batch in 0..30 {
            let samples: Vec<f32> = (0..20)
                .map(|i| {
                    let t = (batch * 20 + i) as f32;
                    let base = 20.0 + (t * 0.3).sin() * 2.0 + ((t * 7.1) % 1.0);
                    if (batch * 20 + i) % 97 == 50 {
                        base + 40.0
                    } else {
                        base
                    }
                })
                .collect();
            let start = history.len();
            history.extend_from_slice(&samples);
            found.extend(
                spikes(&h.ok(&observe(7, &samples)))
                    .iter()
                    .map(|&i| start + i as usize),
            );
        }
        let expected: Vec<usize> = reference(&history, 3.0)
            .iter()
            .enumerate()
            .filter_map(|(i, &s)| s.then_some(i))
            .collect();
        assert_eq!(found, expected);
        assert!(found.contains(&(97 * 3 + 50)));
        let stats = h.ok(&stats(7));
        assert_eq!(u32::from_le_bytes(stats[16..20].try_into().unwrap()), 32);
    }

    #[test]
    fn sensors_full_bad_values_and_migration() {
        let mut h = spike(2);
        h.ok(&observe(1, &[1.0; 40]));
        h.ok(&observe(2, &[2.0, 3.0]));
        assert_eq!(h.err(&observe(3, &[1.0])), ServiceError::Full);
        assert_eq!(h.err(&observe(1, &[f32::INFINITY])), ServiceError::BadField);
        assert_eq!(h.err(&stats(9)), ServiceError::NotFound);
        assert_eq!(spikes(&h.ok(&observe(1, &[1.0, 1.5]))), [1]);
        let mut other = spike(2);
        h.migrate_to(&mut other);
        for sensor in [1, 2] {
            let more = observe(sensor, &[1.0, 2.0, 90.0, 1.0]);
            assert_eq!(h.ok(&more), other.ok(&more));
            assert_eq!(h.ok(&stats(sensor)), other.ok(&stats(sensor)));
        }
    }

    /// Mean and population standard deviation, two-pass.
    fn mean_sd(window: &[f64]) -> (f64, f64) {
        let n = window.len() as f64;
        let mean = window.iter().sum::<f64>() / n;
        let variance = window.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        (mean, variance.sqrt())
    }

    proptest! {
        /// Random windows, thresholds and sensor capacities over integer samples with
        /// occasional large excursions, against Z-scores recomputed over each sensor's
        /// previous `window` samples. Samples whose Z-score is within rounding of the
        /// threshold are not judged.
        #[test]
        fn spikes_match_a_two_pass_recount(
            window in 2usize..12,
            tenths in 5u8..40,
            capacity in 1usize..4,
            batches in proptest::collection::vec((
                0u32..5,
                proptest::collection::vec(prop_oneof![8 => -5i16..5, 1 => -100i16..100], 0..30),
            ), 1..20),
        ) {
            let threshold = f64::from(tenths) / 10.0;
            let mut h = Harness::new(Spike::new(
                ServiceId(1),
                SpikeConfig { sensors: capacity, window, threshold, seed: 2 },
            ));
            let mut seen: HashMap<u32, Vec<f64>> = HashMap::new();
            for (sensor, samples) in batches {
                let samples: Vec<f32> = samples.iter().map(|&x| f32::from(x)).collect();
                if !seen.contains_key(&sensor) && seen.len() == capacity {
                    prop_assert_eq!(h.err(&observe(sensor, &samples)), ServiceError::Full);
                    continue;
                }
                let found = spikes(&h.ok(&observe(sensor, &samples)));
                let history = seen.entry(sensor).or_default();
                for (i, &x) in samples.iter().enumerate() {
                    let x = f64::from(x);
                    if history.len() >= window {
                        let (mean, sd) = mean_sd(&history[history.len() - window..]);
                        let reported = found.contains(&(i as u16));
                        if sd == 0.0 {
                            prop_assert_eq!(reported, x != mean);
                        } else if ((x - mean).abs() / sd - threshold).abs() > 1e-9 {
                            prop_assert_eq!(reported, (x - mean).abs() / sd > threshold);
                        }
                    } else {
                        prop_assert!(!found.contains(&(i as u16)), "judged before the window filled");
                    }
                    history.push(x);
                }
                let answer = h.ok(&stats(sensor));
                let recent = &history[history.len().saturating_sub(window)..];
                let (mean, sd) = if recent.is_empty() { (0.0, 0.0) } else { mean_sd(recent) };
                let got_mean = f64::from_le_bytes(answer[..8].try_into().unwrap());
                let got_sd = f64::from_le_bytes(answer[8..16].try_into().unwrap());
                prop_assert!((got_mean - mean).abs() < 1e-9 && (got_sd - sd).abs() < 1e-6);
                prop_assert_eq!(&answer[16..20], &(recent.len() as u32).to_le_bytes()[..]);
            }
        }
    }
}
