//! KVS: an in-memory key-value store on a reliable hash table, with a version per key.
//!
//! Each key carries a version bumped through the fetch-and-add engine on every write (clients
//! can use it as a compare-and-set token), and the service counts its operations the same way.
//! Request format: docs/services.md, section KVS.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::codec::{Request, Response};
use crate::collections::{Bytes, ReliableArray, ReliableMap, SnapshotReader, SnapshotWriter};
use crate::kind::ServiceKind;
use crate::service::{Context, Service, ServiceError, ServiceId, ServiceIdentity, StateError};

/// Longest key in bytes.
pub const MAX_KEY: usize = 64;
/// Longest value in bytes.
pub const MAX_VALUE: usize = 1024;

/// Operation codes (first request byte).
pub mod op {
    /// Read a key.
    pub const GET: u8 = 1;
    /// Write a key.
    pub const PUT: u8 = 2;
    /// Delete a key.
    pub const DELETE: u8 = 3;
    /// Read the operation counters.
    pub const STATS: u8 = 4;
}

/// Request builders (client side; they allocate).
pub mod request {
    use super::op;
    use crate::codec::RequestBuilder;
    use alloc::vec::Vec;

    /// Read `key`.
    pub fn get(key: &[u8]) -> Vec<u8> {
        RequestBuilder::new(op::GET)
            .u8(key.len() as u8)
            .bytes(key)
            .build()
    }

    /// Write `value` under `key`.
    pub fn put(key: &[u8], value: &[u8]) -> Vec<u8> {
        RequestBuilder::new(op::PUT)
            .u8(key.len() as u8)
            .u16(value.len() as u16)
            .bytes(key)
            .bytes(value)
            .build()
    }

    /// Delete `key`.
    pub fn delete(key: &[u8]) -> Vec<u8> {
        RequestBuilder::new(op::DELETE)
            .u8(key.len() as u8)
            .bytes(key)
            .build()
    }

    /// Read the counters.
    pub fn stats() -> Vec<u8> {
        RequestBuilder::new(op::STATS).build()
    }
}

const STATE_VERSION: u8 = 1;

/// Deploy-time configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvsConfig {
    /// Most keys stored at once.
    pub capacity: usize,
    /// Seed of the table's hash function.
    pub seed: u64,
}

impl Default for KvsConfig {
    fn default() -> Self {
        Self {
            capacity: 4096,
            seed: 0x6b76_735f_7365_6564,
        }
    }
}

/// Operation counters, in [`op::STATS`] order.
#[derive(Clone, Copy)]
enum Counter {
    Gets,
    Hits,
    Puts,
    Deletes,
}

type Key = Bytes<MAX_KEY>;
/// A stored value and its version.
type Slot = (AtomicU64, Bytes<MAX_VALUE>);

/// The KVS service.
pub struct Kvs {
    identity: ServiceIdentity,
    table: ReliableMap<Key, Slot>,
    counters: ReliableArray<AtomicU64>,
}

fn key<'r>(request: &mut Request<'r>, len: u8) -> Result<&'r [u8], ServiceError> {
    if len == 0 || usize::from(len) > MAX_KEY {
        return Err(ServiceError::BadField);
    }
    request.bytes(usize::from(len))
}

impl Kvs {
    /// Heap bytes an instance with `config` allocates.
    pub const fn footprint(config: &KvsConfig) -> usize {
        ReliableMap::<Key, Slot>::bytes_for(config.capacity)
            + ReliableArray::<AtomicU64>::bytes_for(4)
    }

    /// An empty store.
    pub fn new(id: ServiceId, config: KvsConfig) -> Self {
        Self {
            identity: ServiceIdentity::new(id, ServiceKind::Kvs, 512, 300),
            table: ReliableMap::with_capacity(config.capacity, config.seed),
            counters: ReliableArray::from_fn(4, |_| AtomicU64::new(0)),
        }
    }

    /// Number of keys stored.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    fn bump(&self, ctx: &Context<'_>, counter: Counter) {
        ctx.engines
            .atomics()
            .fetch_add(&self.counters[counter as usize], 1);
    }
}

impl Service for Kvs {
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
            op::GET => {
                let len = request.u8()?;
                let key = key(&mut request, len)?;
                self.bump(ctx, Counter::Gets);
                let (version, value) = self.table.get(key).ok_or(ServiceError::NotFound)?;
                let mut out = Response::new(response)?;
                out.u64(version.load(Ordering::Relaxed))?
                    .u16(value.as_slice().len() as u16)?
                    .bytes(value.as_slice())?;
                self.bump(ctx, Counter::Hits);
                Ok(out.finish())
            }
            op::PUT => {
                let key_len = request.u8()?;
                let value_len = usize::from(request.u16()?);
                let key = key(&mut request, key_len)?;
                if value_len > MAX_VALUE {
                    return Err(ServiceError::BadField);
                }
                let value = request.bytes(value_len)?;
                let mut out = Response::new(response)?;
                if out.space() < 8 {
                    return Err(ServiceError::ResponseTooSmall);
                }
                let (slot, _) = self
                    .table
                    .get_or_insert_with(key, || {
                        // `key` is at most MAX_KEY bytes (checked above), so `new` succeeds.
                        let stored = Bytes::new(key).unwrap_or_else(Bytes::empty);
                        (stored, (AtomicU64::new(0), Bytes::empty()))
                    })
                    .map_err(|_| ServiceError::Full)?;
                let (version, stored) = slot;
                stored.set(value);
                let version = ctx.engines.atomics().fetch_add(version, 1) + 1;
                self.bump(ctx, Counter::Puts);
                out.u64(version)?;
                Ok(out.finish())
            }
            op::DELETE => {
                let len = request.u8()?;
                let key = key(&mut request, len)?;
                let out = Response::new(response)?;
                self.table.remove(key).ok_or(ServiceError::NotFound)?;
                self.bump(ctx, Counter::Deletes);
                Ok(out.finish())
            }
            op::STATS => {
                let mut out = Response::new(response)?;
                for counter in self.counters.iter() {
                    out.u64(counter.load(Ordering::Relaxed))?;
                }
                out.u64(self.table.len() as u64)?;
                Ok(out.finish())
            }
            _ => Err(ServiceError::BadOpcode),
        }
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        let mut w = SnapshotWriter::new(out, ServiceKind::Kvs, STATE_VERSION);
        self.table.snapshot(&mut w);
        self.counters.snapshot(&mut w);
        w.finish();
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateError> {
        let mut r = SnapshotReader::open(snapshot, ServiceKind::Kvs, STATE_VERSION)?;
        let table = self.table.decode_like(&mut r)?;
        let counters = ReliableArray::decode(&mut r, self.counters.len())?;
        r.finish()?;
        self.table = table;
        self.counters = counters;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::request::{delete, get, put, stats};
    use super::*;
    use crate::services::testing::{call, Harness};
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn kvs(capacity: usize) -> Harness<Kvs> {
        Harness::new(Kvs::new(ServiceId(7), KvsConfig { capacity, seed: 42 }))
    }

    fn value_of(answer: &[u8]) -> (u64, &[u8]) {
        let version = u64::from_le_bytes(answer[..8].try_into().unwrap());
        let len = u16::from_le_bytes([answer[8], answer[9]]) as usize;
        assert_eq!(answer.len(), 10 + len);
        (version, &answer[10..])
    }

    #[test]
    fn put_get_delete_with_versions() {
        let mut h = kvs(4);
        assert_eq!(h.err(&get(b"k")), ServiceError::NotFound);
        assert_eq!(h.ok(&put(b"k", b"one")), 1u64.to_le_bytes());
        assert_eq!(h.ok(&put(b"k", b"two!")), 2u64.to_le_bytes());
        assert_eq!(value_of(&h.ok(&get(b"k"))), (2, &b"two!"[..]));
        assert_eq!(h.ok(&put(b"e", b"")), 1u64.to_le_bytes());
        assert_eq!(value_of(&h.ok(&get(b"e"))), (1, &b""[..]));
        assert!(h.ok(&delete(b"k")).is_empty());
        assert_eq!(h.err(&delete(b"k")), ServiceError::NotFound);
        let counters = h.ok(&stats());
        let c: Vec<u64> = counters
            .chunks(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(c, [3, 2, 3, 1, 1]);
    }

    #[test]
    fn full_store_and_bad_requests() {
        let mut h = kvs(2);
        h.ok(&put(b"a", b"1"));
        h.ok(&put(b"b", b"2"));
        assert_eq!(h.err(&put(b"c", b"3")), ServiceError::Full);
        h.ok(&put(b"a", b"updated in place"));
        assert_eq!(h.err(&[]), ServiceError::Truncated);
        assert_eq!(h.err(&[0]), ServiceError::BadOpcode);
        assert_eq!(h.err(&[op::GET]), ServiceError::Truncated);
        assert_eq!(h.err(&[op::GET, 0]), ServiceError::BadField);
        assert_eq!(h.err(&[op::GET, 65]), ServiceError::BadField);
        assert_eq!(h.err(&[op::GET, 3, b'a']), ServiceError::BadLength);
        assert_eq!(
            h.err(&[op::PUT, 1, 0xff, 0xff, b'a']),
            ServiceError::BadField
        );
        assert_eq!(h.err(&[op::PUT, 1, 5, 0, b'a', 1]), ServiceError::BadLength);
        let mut small = [0u8; 4];
        assert_eq!(
            call(&mut h.service, &get(b"a"), &mut small),
            Err(ServiceError::ResponseTooSmall)
        );
        assert_eq!(
            call(&mut h.service, &put(b"z", b"1"), &mut small),
            Err(ServiceError::ResponseTooSmall)
        );
        assert_eq!(h.service.len(), 2, "refused requests store nothing");
    }

    #[test]
    fn padding_after_the_request_is_ignored() {
        let mut h = kvs(2);
        let mut request = put(b"k", b"v");
        request.resize(512, 0xee);
        h.ok(&request);
        let mut request = get(b"k");
        request.resize(512, 0);
        assert_eq!(value_of(&h.ok(&request)).1, b"v");
    }

    #[test]
    fn snapshot_restore_gives_identical_answers() {
        let mut h = kvs(64);
        for i in 0..50u8 {
            h.ok(&put(&[i, i], &vec![i; usize::from(i) * 3]));
        }
        for i in 0..10u8 {
            h.ok(&delete(&[i * 3, i * 3]));
        }
        let mut other = kvs(64);
        h.migrate_to(&mut other);
        for i in 0..55u8 {
            assert_eq!(h.answer(&get(&[i, i])), other.answer(&get(&[i, i])));
        }
        assert_eq!(h.ok(&stats()), other.ok(&stats()));
        let mut smaller = kvs(8);
        let mut bytes = Vec::new();
        h.service.snapshot(&mut bytes);
        assert_eq!(smaller.service.restore(&bytes), Err(StateError::TooLarge));
        assert_eq!(smaller.service.len(), 0);
    }

    proptest! {
        #[test]
        fn agrees_with_a_hash_map(ops in proptest::collection::vec(
            (0u8..3, proptest::collection::vec(0u8..4, 1..3), proptest::collection::vec(any::<u8>(), 0..40)),
            0..200,
        )) {
            let mut h = kvs(1000);
            let mut model: HashMap<Vec<u8>, (u64, Vec<u8>)> = HashMap::new();
            for (kind, key, value) in ops {
                match kind {
                    0 => {
                        let got = h.answer(&get(&key));
                        match model.get(&key) {
                            Some((v, val)) => {
                                let answer = got.unwrap();
                                prop_assert_eq!(value_of(&answer), (*v, &val[..]));
                            }
                            None => prop_assert_eq!(got, Err(ServiceError::NotFound)),
                        }
                    }
                    1 => {
                        let entry = model.entry(key.clone()).or_insert((0, Vec::new()));
                        entry.0 += 1;
                        entry.1 = value.clone();
                        prop_assert_eq!(h.ok(&put(&key, &value)), entry.0.to_le_bytes());
                    }
                    _ => {
                        let expected = if model.remove(&key).is_some() { Ok(Vec::new()) } else { Err(ServiceError::NotFound) };
                        prop_assert_eq!(h.answer(&delete(&key)), expected);
                    }
                }
            }
        }
    }
}
