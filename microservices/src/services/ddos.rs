//! DDoS detection: Shannon entropy of the source addresses of the last `window` packets.
//!
//! A flood from few sources drives the normalised entropy `H / log2(window)` down; a flood of
//! spoofed random sources drives it up. Once the window is full, an entropy outside
//! `[low, high]` raises the alarm. Per-source counts live in a reliable map and the window in a
//! reliable ring, and `sum c*log2(c)` is kept incrementally (from a table computed at deploy
//! time), so each packet costs O(1). Request format: docs/services.md, section DDoS.

use alloc::vec::Vec;

use crate::codec::{Request, Response};
use crate::collections::{ReliableArray, ReliableMap, SnapshotReader, SnapshotWriter};
use crate::kind::ServiceKind;
use crate::service::{Context, Service, ServiceError, ServiceId, ServiceIdentity, StateError};

/// Operation codes (first request byte).
pub mod op {
    /// Feed packets' source addresses.
    pub const OBSERVE: u8 = 1;
    /// Read the current entropy and alarm.
    pub const STATUS: u8 = 2;
}

/// Request builders (client side; they allocate).
pub mod request {
    use super::op;
    use crate::codec::RequestBuilder;
    use alloc::vec::Vec;

    /// Feed these source addresses, in arrival order.
    pub fn observe(sources: &[u32]) -> Vec<u8> {
        RequestBuilder::new(op::OBSERVE)
            .list(sources, |b, &s| b.u32(s))
            .build()
    }

    /// Read the status.
    pub fn status() -> Vec<u8> {
        RequestBuilder::new(op::STATUS).build()
    }
}

const STATE_VERSION: u8 = 1;

/// Deploy-time configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DdosConfig {
    /// Packets in the window (2 or more).
    pub window: usize,
    /// Alarm below this normalised entropy.
    pub low: f64,
    /// Alarm above this normalised entropy.
    pub high: f64,
    /// Seed of the count table's hash function.
    pub seed: u64,
}

impl Default for DdosConfig {
    fn default() -> Self {
        Self {
            window: 4096,
            low: 0.5,
            high: 0.98,
            seed: 0x6464_6f73_5f73_6565,
        }
    }
}

/// The DDoS detection service.
pub struct Ddos {
    identity: ServiceIdentity,
    low: f64,
    high: f64,
    /// `c * log2(c)` for `c` in `0..=window`.
    xlogx: Vec<f64>,
    /// The last `window` sources, oldest at `head` once full.
    ring: ReliableArray<u32>,
    head: usize,
    filled: usize,
    counts: ReliableMap<u32, u32>,
    /// `sum over sources of c * log2(c)`.
    weighted: f64,
}

impl Ddos {
    /// Heap bytes an instance with `config` allocates.
    pub fn footprint(config: &DdosConfig) -> usize {
        let window = config.window.max(2);
        (window + 1) * size_of::<f64>()
            + ReliableArray::<u32>::bytes_for(window)
            + ReliableMap::<u32, u32>::bytes_for(window)
    }

    /// A detector with an empty window.
    pub fn new(id: ServiceId, config: DdosConfig) -> Self {
        let window = config.window.max(2);
        Self {
            identity: ServiceIdentity::new(id, ServiceKind::Ddos, 512, 600),
            low: config.low,
            high: config.high,
            xlogx: (0..=window)
                .map(|c| {
                    if c == 0 {
                        0.0
                    } else {
                        c as f64 * libm::log2(c as f64)
                    }
                })
                .collect(),
            ring: ReliableArray::filled(window, 0),
            head: 0,
            filled: 0,
            counts: ReliableMap::with_capacity(window, config.seed),
            weighted: 0.0,
        }
    }

    /// Shannon entropy (bits) of the sources in the window.
    pub fn entropy(&self) -> f64 {
        if self.filled == 0 {
            return 0.0;
        }
        let n = self.filled as f64;
        // H = log2(n) - (1/n) sum c log2 c; rounding can leave a tiny negative.
        (self.xlogx[self.filled] / n - self.weighted / n).max(0.0)
    }

    fn alarm(&self) -> bool {
        if self.filled < self.ring.len() {
            return false;
        }
        let normalised = self.entropy() / libm::log2(self.ring.len() as f64);
        normalised < self.low || normalised > self.high
    }

    fn adjust(&mut self, source: u32, add: bool) {
        let (count, _) = match self.counts.get_or_insert_with(&source, || (source, 0)) {
            Ok(entry) => entry,
            // The window holds at most `window` distinct sources: the map never fills.
            Err(_) => return,
        };
        let before = *count as usize;
        let after = if add {
            before + 1
        } else {
            before.saturating_sub(1)
        };
        *count = after as u32;
        self.weighted += self.xlogx[after] - self.xlogx[before];
        if after == 0 {
            self.counts.remove(&source);
        }
    }

    fn status(&self, response: &mut [u8]) -> Result<usize, ServiceError> {
        let mut out = Response::new(response)?;
        out.f64(self.entropy())?
            .u8(u8::from(self.alarm()))?
            .u32(self.filled as u32)?
            .u32(self.counts.len() as u32)?;
        Ok(out.finish())
    }
}

impl Service for Ddos {
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
                let n = usize::from(request.u16()?);
                let sources = request.records(n, 4)?;
                if response.len() < 18 {
                    return Err(ServiceError::ResponseTooSmall);
                }
                for s in sources.chunks_exact(4) {
                    let source = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
                    if self.filled == self.ring.len() {
                        let oldest = self.ring[self.head];
                        self.adjust(oldest, false);
                    } else {
                        self.filled += 1;
                    }
                    self.ring[self.head] = source;
                    self.head = (self.head + 1) % self.ring.len();
                    self.adjust(source, true);
                }
                self.status(response)
            }
            op::STATUS => self.status(response),
            _ => Err(ServiceError::BadOpcode),
        }
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        let mut w = SnapshotWriter::new(out, ServiceKind::Ddos, STATE_VERSION);
        w.count(self.head).count(self.filled).record(&self.weighted);
        self.ring.snapshot(&mut w);
        w.finish();
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateError> {
        let mut r = SnapshotReader::open(snapshot, ServiceKind::Ddos, STATE_VERSION)?;
        let window = self.ring.len();
        let head = r.count(window - 1)?;
        let filled = r.count(window)?;
        let weighted: f64 = r.record()?;
        let ring = ReliableArray::<u32>::decode(&mut r, window)?;
        r.finish()?;
        if filled < window && head != filled {
            return Err(StateError::Corrupt);
        }
        // The counts follow from the window: rebuild them rather than trust a second copy.
        let mut rebuilt = Ddos::new(
            self.identity.id,
            DdosConfig {
                window,
                low: self.low,
                high: self.high,
                seed: self.counts.seed(),
            },
        );
        rebuilt.identity = self.identity;
        let oldest = if filled == window { head } else { 0 };
        for i in 0..filled {
            let source = ring[(oldest + i) % window];
            rebuilt.adjust(source, true);
        }
        // Keep the sender's running sum (bit for bit, so both answer alike from here on)
        // once it agrees with the recount.
        let tolerance = 1e-6 * (1.0 + libm::fabs(weighted));
        if weighted.is_nan() || libm::fabs(rebuilt.weighted - weighted) > tolerance {
            return Err(StateError::Corrupt);
        }
        rebuilt.weighted = weighted;
        rebuilt.ring = ring;
        rebuilt.head = head;
        rebuilt.filled = filled;
        *self = rebuilt;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::request::{observe, status};
    use super::*;
    use crate::services::testing::Harness;
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};

    fn ddos(window: usize) -> Harness<Ddos> {
        Harness::new(Ddos::new(
            ServiceId(1),
            DdosConfig {
                window,
                low: 0.5,
                high: 0.98,
                seed: 5,
            },
        ))
    }

    fn decode(answer: &[u8]) -> (f64, bool, u32, u32) {
        (
            f64::from_le_bytes(answer[..8].try_into().unwrap()),
            answer[8] == 1,
            u32::from_le_bytes(answer[9..13].try_into().unwrap()),
            u32::from_le_bytes(answer[13..17].try_into().unwrap()),
        )
    }

    /// Entropy of the last `window` sources, recounted from scratch.
    fn reference(history: &[u32], window: usize) -> f64 {
        let recent = &history[history.len().saturating_sub(window)..];
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for s in recent {
            *counts.entry(*s).or_default() += 1;
        }
        let n = recent.len() as f64;
        counts
            .values()
            .map(|&c| {
                let p = c as f64 / n;
                -p * p.log2()
            })
            .sum()
    }

    #[test]
    fn entropy_matches_a_recount_and_alarms_on_both_kinds_of_attack() {
        let window = 512;
        let mut h = ddos(window);
        let mut history = Vec::new();
        let mut state = 0x2545_f491_u32;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        // Normal traffic: 200 clients, skewed. Then a flood from 3 sources, then spoofed
        // random sources.
        let mut alarms = Vec::new();
        for phase in 0..3 {
            for _ in 0..40 {
                let batch: Vec<u32> = (0..30)
                    .map(|_| {
                        let r = next();
                        match phase {
                            0 => 0x0a00_0000 + (r % 200) * (r % 3 + 1) % 200,
                            1 => 0xbad0_0000 + r % 3,
                            _ => r,
                        }
                    })
                    .collect();
                history.extend_from_slice(&batch);
                let (entropy, alarm, filled, _) = decode(&h.ok(&observe(&batch)));
                assert!((entropy - reference(&history, window)).abs() < 1e-9);
                assert_eq!(filled as usize, history.len().min(window));
                alarms.push(alarm);
            }
        }
        assert!(!alarms[39], "normal traffic raises no alarm");
        assert!(alarms[79], "a flood from three sources alarms");
        assert!(alarms[119], "spoofed random sources alarm");
    }

    #[test]
    fn migration_and_bad_requests() {
        let mut h = ddos(64);
        assert_eq!(h.err(&[op::OBSERVE, 1]), ServiceError::Truncated);
        assert_eq!(h.err(&[op::OBSERVE, 1, 0, 1]), ServiceError::BadLength);
        assert_eq!(h.err(&[0]), ServiceError::BadOpcode);
        for i in 0..3u32 {
            h.ok(&observe(
                &(0..30).map(|j| (i * 7 + j) % 11).collect::<Vec<_>>(),
            ));
            let mut other = ddos(64);
            h.migrate_to(&mut other);
            assert_eq!(h.ok(&status()), other.ok(&status()));
            let more = observe(&[1, 2, 3, 99]);
            assert_eq!(decode(&h.ok(&more)), decode(&other.ok(&more)));
        }
        let mut bytes = Vec::new();
        h.service.snapshot(&mut bytes);
        assert_eq!(ddos(32).service.restore(&bytes), Err(StateError::TooLarge));
    }

    proptest! {
        /// Random windows and thresholds over streams of few or many sources, against a
        /// recount of the last `window` sources after every batch: entropy, packets in the
        /// window, distinct sources and the alarm (judged where the normalised entropy is not
        /// within rounding of a threshold).
        #[test]
        fn status_matches_a_recount_of_the_window(
            window in 2usize..40,
            thresholds in (0u8..=10, 0u8..=10),
            universe in 1u32..50,
            batches in proptest::collection::vec(
                proptest::collection::vec(any::<u32>(), 0..60), 1..12),
        ) {
            let low = f64::from(thresholds.0.min(thresholds.1)) / 10.0;
            let high = f64::from(thresholds.0.max(thresholds.1)) / 10.0;
            let mut h = Harness::new(Ddos::new(
                ServiceId(1),
                DdosConfig { window, low, high, seed: 3 },
            ));
            let mut history: Vec<u32> = Vec::new();
            for batch in batches {
                let sources: Vec<u32> = batch.iter().map(|s| 0x0a00_0000 + s % universe).collect();
                history.extend_from_slice(&sources);
                let answer = h.ok(&observe(&sources));
                prop_assert_eq!(&answer, &h.ok(&status()));
                let (entropy, alarm, filled, distinct) = decode(&answer);
                let recent = &history[history.len().saturating_sub(window)..];
                let expected = reference(&history, window);
                prop_assert!((entropy - expected).abs() < 1e-9, "{} vs {}", entropy, expected);
                prop_assert_eq!(filled as usize, recent.len());
                prop_assert_eq!(distinct as usize, recent.iter().collect::<HashSet<_>>().len());
                let normalised = expected / (window as f64).log2();
                let clear = (normalised - low).abs() > 1e-9 && (normalised - high).abs() > 1e-9;
                if clear {
                    let should = recent.len() == window && (normalised < low || normalised > high);
                    prop_assert_eq!(alarm, should);
                }
            }
        }
    }
}
