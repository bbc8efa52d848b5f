//! Flow monitor: per-flow packet and byte volumes in a count-min sketch.
//!
//! `depth` rows of `width` counters; a flow's 5-tuple hashes (one seeded hash per row) to one
//! counter per row, every one of which is bumped through the fetch-and-add engine; a query
//! answers the smallest of them. The estimate never undercounts, and overcounts by more than
//! `e / width` of the total volume with probability at most `exp(-depth)`. Request format:
//! docs/services.md, section Flow monitor.

use alloc::vec::Vec;
use core::hash::BuildHasher;
use core::sync::atomic::{AtomicU64, Ordering};

use foldhash::fast::FixedState;

use crate::codec::{Request, Response};
use crate::collections::{ReliableArray, SnapshotReader, SnapshotWriter};
use crate::kind::ServiceKind;
use crate::service::{Context, Service, ServiceError, ServiceId, ServiceIdentity, StateError};

/// Bytes of a flow key: source and destination address, ports, protocol.
pub const FLOW_KEY: usize = 13;

/// Operation codes (first request byte).
pub mod op {
    /// Add volumes to flows.
    pub const RECORD: u8 = 1;
    /// Estimate flows' volumes.
    pub const QUERY: u8 = 2;
}

/// A flow's 5-tuple as carried in requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Source address.
    pub src: u32,
    /// Destination address.
    pub dst: u32,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// IP protocol.
    pub protocol: u8,
}

impl FlowKey {
    /// The 13-byte wire form (addresses and ports big-endian, as in the packet).
    pub fn to_bytes(&self) -> [u8; FLOW_KEY] {
        let mut out = [0u8; FLOW_KEY];
        out[..4].copy_from_slice(&self.src.to_be_bytes());
        out[4..8].copy_from_slice(&self.dst.to_be_bytes());
        out[8..10].copy_from_slice(&self.src_port.to_be_bytes());
        out[10..12].copy_from_slice(&self.dst_port.to_be_bytes());
        out[12] = self.protocol;
        out
    }
}

/// Request builders (client side; they allocate).
pub mod request {
    use super::{op, FlowKey};
    use crate::codec::RequestBuilder;
    use alloc::vec::Vec;

    /// Add `volume` to each flow.
    pub fn record(flows: &[(FlowKey, u32)]) -> Vec<u8> {
        RequestBuilder::new(op::RECORD)
            .list(flows, |b, (key, volume)| {
                b.bytes(&key.to_bytes()).u32(*volume)
            })
            .build()
    }

    /// Estimate each flow's volume.
    pub fn query(flows: &[FlowKey]) -> Vec<u8> {
        RequestBuilder::new(op::QUERY)
            .list(flows, |b, key| b.bytes(&key.to_bytes()))
            .build()
    }
}

const STATE_VERSION: u8 = 1;

/// Deploy-time configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowMonitorConfig {
    /// Rows (independent hashes), 1 to 16.
    pub depth: usize,
    /// Counters per row.
    pub width: usize,
    /// Seed of the row hashes.
    pub seed: u64,
}

impl Default for FlowMonitorConfig {
    fn default() -> Self {
        Self {
            depth: 4,
            width: 4096,
            seed: 0x666c_6f77_6d6f_6e00,
        }
    }
}

/// The flow monitor service.
pub struct FlowMonitor {
    identity: ServiceIdentity,
    rows: Vec<FixedState>,
    width: usize,
    /// Row-major `depth x width` counters.
    counters: ReliableArray<AtomicU64>,
    total: AtomicU64,
}

impl FlowMonitor {
    /// Heap bytes an instance with `config` allocates.
    pub fn footprint(config: &FlowMonitorConfig) -> usize {
        let depth = config.depth.clamp(1, 16);
        depth * size_of::<FixedState>()
            + ReliableArray::<AtomicU64>::bytes_for(depth * config.width.max(1))
    }

    /// An empty sketch.
    pub fn new(id: ServiceId, config: FlowMonitorConfig) -> Self {
        let depth = config.depth.clamp(1, 16);
        let width = config.width.max(1);
        Self {
            identity: ServiceIdentity::new(id, ServiceKind::FlowMonitor, 512, 500),
            rows: (0..depth as u64)
                .map(|row| {
                    FixedState::with_seed(config.seed ^ row.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                })
                .collect(),
            width,
            counters: ReliableArray::from_fn(depth * width, |_| AtomicU64::new(0)),
            total: AtomicU64::new(0),
        }
    }

    /// The counter of `key` in each row.
    fn cells<'s>(&'s self, key: &'s [u8]) -> impl Iterator<Item = &'s AtomicU64> + 's {
        self.rows.iter().enumerate().map(move |(row, hasher)| {
            let column = (hasher.hash_one(key) % self.width as u64) as usize;
            &self.counters[row * self.width + column]
        })
    }

    /// The sketch's estimate for the flow `key` (13 bytes).
    pub fn estimate(&self, key: &[u8]) -> u64 {
        self.cells(key)
            .map(|c| c.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }
}

impl Service for FlowMonitor {
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
            op::RECORD => {
                let n = usize::from(request.u16()?);
                let records = request.records(n, FLOW_KEY + 4)?;
                let out = Response::new(response)?;
                let atomics = ctx.engines.atomics();
                let mut added = 0u64;
                for record in records.chunks_exact(FLOW_KEY + 4) {
                    let (key, volume) = record.split_at(FLOW_KEY);
                    let volume = u64::from(u32::from_le_bytes([
                        volume[0], volume[1], volume[2], volume[3],
                    ]));
                    for cell in self.cells(key) {
                        atomics.fetch_add(cell, volume);
                    }
                    added += volume;
                }
                atomics.fetch_add(&self.total, added);
                Ok(out.finish())
            }
            op::QUERY => {
                let n = usize::from(request.u16()?);
                let keys = request.records(n, FLOW_KEY)?;
                let mut out = Response::new(response)?;
                if out.space() < 8 * n + 8 {
                    return Err(ServiceError::ResponseTooSmall);
                }
                out.u64(self.total.load(Ordering::Relaxed))?;
                for key in keys.chunks_exact(FLOW_KEY) {
                    out.u64(self.estimate(key))?;
                }
                Ok(out.finish())
            }
            _ => Err(ServiceError::BadOpcode),
        }
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        let mut w = SnapshotWriter::new(out, ServiceKind::FlowMonitor, STATE_VERSION);
        w.count(self.rows.len()).count(self.width);
        self.counters.snapshot(&mut w);
        w.record(&self.total);
        w.finish();
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateError> {
        let mut r = SnapshotReader::open(snapshot, ServiceKind::FlowMonitor, STATE_VERSION)?;
        if r.count(usize::MAX)? != self.rows.len() || r.count(usize::MAX)? != self.width {
            return Err(StateError::WrongKind);
        }
        let counters = ReliableArray::decode(&mut r, self.counters.len())?;
        let total = r.record()?;
        r.finish()?;
        self.counters = counters;
        self.total = total;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::request::{query, record};
    use super::*;
    use crate::services::testing::Harness;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn flow(i: u32) -> FlowKey {
        FlowKey {
            src: 0x0a00_0000 | i,
            dst: 0xc0a8_0001,
            src_port: (i % 60000) as u16,
            dst_port: 443,
            protocol: 6,
        }
    }

    fn monitor(width: usize) -> Harness<FlowMonitor> {
        Harness::new(FlowMonitor::new(
            ServiceId(1),
            FlowMonitorConfig {
                depth: 4,
                width,
                seed: 11,
            },
        ))
    }

    fn estimates(h: &mut Harness<FlowMonitor>, flows: &[FlowKey]) -> (u64, Vec<u64>) {
        let answer = h.ok(&query(flows));
        let words: Vec<u64> = answer
            .chunks(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        (words[0], words[1..].to_vec())
    }

    #[test]
    fn estimates_respect_the_count_min_bounds() {
        let width = 256;
        let mut h = monitor(width);
        let mut exact: HashMap<u32, u64> = HashMap::new();
        // A skewed stream: flow i gets weight about 1000 / (i + 1).
        let mut batch = Vec::new();
        for i in 0..2000u32 {
            let id = (i * i) % 1000 % (1 + i % 97);
            let volume = 1 + 1000 / (id + 1);
            *exact.entry(id).or_default() += u64::from(volume);
            batch.push((flow(id), volume));
            if batch.len() == 30 {
                h.ok(&record(&batch));
                batch.clear();
            }
        }
        h.ok(&record(&batch));
        let total: u64 = exact.values().sum();
        let ids: Vec<u32> = exact.keys().copied().collect();
        let mut too_far = 0;
        for chunk in ids.chunks(60) {
            let keys: Vec<FlowKey> = chunk.iter().map(|&i| flow(i)).collect();
            let (reported_total, got) = estimates(&mut h, &keys);
            assert_eq!(reported_total, total);
            for (id, estimate) in chunk.iter().zip(got) {
                let truth = exact[id];
                assert!(estimate >= truth, "count-min never undercounts");
                let slack = std::f64::consts::E / width as f64 * total as f64;
                if (estimate - truth) as f64 > slack {
                    too_far += 1;
                }
            }
        }
        // At most exp(-4) ~ 1.8% of flows may exceed the bound; allow a little sampling noise.
        assert!(
            too_far * 100 <= ids.len() * 4,
            "{too_far} of {} too far",
            ids.len()
        );
        let (_, unseen) = estimates(&mut h, &[flow(5000)]);
        assert!(unseen[0] <= (std::f64::consts::E / width as f64 * total as f64) as u64);
    }

    #[test]
    fn bad_requests_and_migration() {
        let mut h = monitor(64);
        assert_eq!(h.err(&[op::RECORD, 2, 0, 1]), ServiceError::BadLength);
        assert_eq!(h.err(&[op::QUERY]), ServiceError::Truncated);
        assert_eq!(h.err(&[3]), ServiceError::BadOpcode);
        h.ok(&record(&[(flow(1), 10), (flow(2), 20), (flow(1), 5)]));
        let mut other = monitor(64);
        h.migrate_to(&mut other);
        let keys = [flow(1), flow(2), flow(3)];
        assert_eq!(h.ok(&query(&keys)), other.ok(&query(&keys)));
        let mut narrower = monitor(32);
        let mut bytes = Vec::new();
        h.service.snapshot(&mut bytes);
        assert_eq!(narrower.service.restore(&bytes), Err(StateError::WrongKind));
    }

    proptest! {
        /// Random sketches (depth, width, seed) over random flows and volumes, against exact
        /// volumes: every estimate is at least the flow's volume and at most the total, never
        /// decreases, and is exact when a single flow was recorded; the total is exact.
        #[test]
        fn estimates_bound_the_exact_volumes(
            depth in 1usize..5,
            width in 1usize..64,
            seed in any::<u64>(),
            universe in proptest::collection::vec(any::<(u32, u32, u16, u16, u8)>(), 1..30),
            batches in proptest::collection::vec(
                proptest::collection::vec((any::<usize>(), 0u32..5000), 0..30), 1..10),
        ) {
            let mut h = Harness::new(FlowMonitor::new(
                ServiceId(1),
                FlowMonitorConfig { depth, width, seed },
            ));
            let flows: Vec<FlowKey> = universe
                .iter()
                .map(|&(src, dst, src_port, dst_port, protocol)| FlowKey {
                    src, dst, src_port, dst_port, protocol,
                })
                .collect();
            let mut exact: HashMap<FlowKey, u64> = HashMap::new();
            let mut previous = vec![0u64; flows.len()];
            for batch in batches {
                let records: Vec<(FlowKey, u32)> =
                    batch.iter().map(|&(i, v)| (flows[i % flows.len()], v)).collect();
                for (flow, volume) in &records {
                    *exact.entry(*flow).or_default() += u64::from(*volume);
                }
                prop_assert!(h.ok(&record(&records)).is_empty());
                let total: u64 = exact.values().sum();
                let (reported, got) = estimates(&mut h, &flows);
                prop_assert_eq!(reported, total);
                let recorded = exact.values().filter(|&&v| v > 0).count();
                for (i, flow) in flows.iter().enumerate() {
                    let truth = exact.get(flow).copied().unwrap_or(0);
                    prop_assert!(got[i] >= truth && got[i] <= total);
                    prop_assert!(got[i] >= previous[i]);
                    if recorded == 1 && truth > 0 {
                        prop_assert_eq!(got[i], truth);
                    }
                }
                previous = got;
            }
        }
    }
}
