//! A fixed-capacity hash table whose contents snapshot to bytes and restore.
//!
//! Entries live densely in one vector (so iteration and snapshots touch only live entries); an
//! open-addressing index with linear probing points into it. The index has at least twice as
//! many slots as the capacity, so probe sequences stay short, and deletion shifts later
//! entries back instead of leaving tombstones, so the table never degrades under churn. All
//! memory is allocated at construction: inserting, updating and removing never allocate.

use alloc::vec::Vec;
use core::borrow::Borrow;
use core::fmt;
use core::hash::{BuildHasher, Hash};

use foldhash::fast::FixedState;

use super::record::Record;
use super::snapshot::{SnapshotReader, SnapshotWriter};
use crate::service::StateError;

/// The table already holds as many entries as its capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapFull;

impl fmt::Display for MapFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("reliable map full")
    }
}

/// A reliable hash map with a capacity fixed at construction.
pub struct ReliableMap<K, V> {
    entries: Vec<(K, V)>,
    hashes: Vec<u32>,
    /// 0 is empty; otherwise the entry's index plus one.
    slots: Vec<u32>,
    mask: usize,
    capacity: usize,
    seed: u64,
    hasher: FixedState,
}

/// Largest capacity a map accepts (entry indices are `u32` in the index).
pub const MAX_CAPACITY: usize = 1 << 30;

impl<K, V> ReliableMap<K, V> {
    /// Heap bytes a map of `capacity` entries allocates (at construction, once for good).
    pub const fn bytes_for(capacity: usize) -> usize {
        let capacity = if capacity < MAX_CAPACITY {
            capacity
        } else {
            MAX_CAPACITY
        };
        let slots = Self::slots_for(capacity);
        capacity * (size_of::<(K, V)>() + size_of::<u32>()) + slots * size_of::<u32>()
    }

    /// Index slots for `capacity` entries: at most half full.
    const fn slots_for(capacity: usize) -> usize {
        let at_least = if capacity > 4 { capacity } else { 4 };
        (at_least * 2).next_power_of_two()
    }
}

impl<K: Hash + Eq, V> ReliableMap<K, V> {
    /// An empty map for up to `capacity` entries (at most [`MAX_CAPACITY`]), hashing with a
    /// hash function keyed by `seed`.
    pub fn with_capacity(capacity: usize, seed: u64) -> Self {
        let capacity = capacity.min(MAX_CAPACITY);
        let slots = Self::slots_for(capacity);
        Self {
            entries: Vec::with_capacity(capacity),
            hashes: Vec::with_capacity(capacity),
            slots: alloc::vec![0; slots],
            mask: slots - 1,
            capacity,
            seed,
            hasher: FixedState::with_seed(seed),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Most entries the map can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u32 {
        let h = self.hasher.hash_one(key);
        (h ^ (h >> 32)) as u32
    }

    /// `Ok((slot, entry))` where `key` is, or `Err(slot)`: the empty slot ending its probe.
    fn find<Q>(&self, hash: u32, key: &Q) -> Result<(usize, usize), usize>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let mut slot = hash as usize & self.mask;
        loop {
            match self.slots[slot] {
                0 => return Err(slot),
                tagged => {
                    let index = tagged as usize - 1;
                    if self.hashes[index] == hash && self.entries[index].0.borrow() == key {
                        return Ok((slot, index));
                    }
                }
            }
            slot = (slot + 1) & self.mask;
        }
    }

    /// The value under `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (_, index) = self.find(self.hash(key), key).ok()?;
        Some(&self.entries[index].1)
    }

    /// The value under `key`, mutable.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (_, index) = self.find(self.hash(key), key).ok()?;
        Some(&mut self.entries[index].1)
    }

    /// Whether `key` has an entry.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// The value under `key`, inserting the entry `new()` first if there is none (its key
    /// must equal `key`). Returns the value and whether it was inserted.
    pub fn get_or_insert_with<Q>(
        &mut self,
        key: &Q,
        new: impl FnOnce() -> (K, V),
    ) -> Result<(&mut V, bool), MapFull>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        match self.find(hash, key) {
            Ok((_, index)) => Ok((&mut self.entries[index].1, false)),
            Err(slot) => {
                if self.entries.len() >= self.capacity {
                    return Err(MapFull);
                }
                let entry = new();
                debug_assert!(entry.0.borrow() == key);
                self.entries.push(entry);
                self.hashes.push(hash);
                // At most MAX_CAPACITY entries, so the index fits a u32.
                self.slots[slot] = self.entries.len() as u32;
                let last = self.entries.len() - 1;
                Ok((&mut self.entries[last].1, true))
            }
        }
    }

    /// Sets `key` to `value`; returns the value it replaced.
    pub fn insert(&mut self, key: K, value: V) -> Result<Option<V>, MapFull> {
        let hash = self.hash(&key);
        match self.find(hash, &key) {
            Ok((_, index)) => Ok(Some(core::mem::replace(&mut self.entries[index].1, value))),
            Err(slot) => {
                if self.entries.len() >= self.capacity {
                    return Err(MapFull);
                }
                self.entries.push((key, value));
                self.hashes.push(hash);
                self.slots[slot] = self.entries.len() as u32;
                Ok(None)
            }
        }
    }

    /// Removes `key`'s entry and returns it.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (slot, index) = self.find(self.hash(key), key).ok()?;
        self.close_hole(slot);
        let last = self.entries.len() - 1;
        if index != last {
            // The last entry moves into `index`: repoint its slot.
            let mut probe = self.hashes[last] as usize & self.mask;
            while self.slots[probe] as usize != last + 1 {
                probe = (probe + 1) & self.mask;
            }
            self.slots[probe] = index as u32 + 1;
        }
        self.hashes.swap_remove(index);
        Some(self.entries.swap_remove(index))
    }

    /// Empties `slot` and shifts back the entries of its probe run that may now sit earlier.
    fn close_hole(&mut self, mut hole: usize) {
        self.slots[hole] = 0;
        let mut slot = (hole + 1) & self.mask;
        while let tagged @ 1.. = self.slots[slot] {
            let home = self.hashes[tagged as usize - 1] as usize & self.mask;
            let from_home = slot.wrapping_sub(home) & self.mask;
            let from_hole = slot.wrapping_sub(hole) & self.mask;
            if from_home >= from_hole {
                self.slots[hole] = tagged;
                self.slots[slot] = 0;
                hole = slot;
            }
            slot = (slot + 1) & self.mask;
        }
    }

    /// Removes every entry (keeps the memory).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.hashes.clear();
        self.slots.fill(0);
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// Every value, mutable, in no particular order.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    /// Appends the entry count and every entry to a snapshot.
    pub fn snapshot(&self, out: &mut SnapshotWriter<'_>)
    where
        K: Record,
        V: Record,
    {
        out.count(self.entries.len());
        for (key, value) in &self.entries {
            out.record(key).record(value);
        }
    }

    /// Reads a map written by [`ReliableMap::snapshot`] into a new map of `capacity`.
    pub fn decode(
        input: &mut SnapshotReader<'_>,
        capacity: usize,
        seed: u64,
    ) -> Result<Self, StateError>
    where
        K: Record,
        V: Record,
    {
        let len = input.count(capacity)?;
        let mut map = Self::with_capacity(capacity, seed);
        for _ in 0..len {
            let key: K = input.record()?;
            let value: V = input.record()?;
            if !matches!(map.insert(key, value), Ok(None)) {
                return Err(StateError::Corrupt);
            }
        }
        Ok(map)
    }

    /// Reads a map written by [`ReliableMap::snapshot`] into a new map with this one's
    /// capacity and seed.
    pub fn decode_like(&self, input: &mut SnapshotReader<'_>) -> Result<Self, StateError>
    where
        K: Record,
        V: Record,
    {
        Self::decode(input, self.capacity, self.seed)
    }

    /// The seed the map hashes with.
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for ReliableMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::ServiceKind;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u16, u32),
        Remove(u16),
        Get(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Few distinct keys, so inserts, hits and removals collide often.
        prop_oneof![
            (0u16..64, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            (0u16..64).prop_map(Op::Remove),
            (0u16..64).prop_map(Op::Get),
        ]
    }

    proptest! {
        #[test]
        fn behaves_like_std_hashmap(ops in proptest::collection::vec(op(), 0..400), seed: u64) {
            let mut map = ReliableMap::with_capacity(40, seed);
            let mut model = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        let full = model.len() >= 40 && !model.contains_key(&k);
                        let got = map.insert(k, v);
                        if full {
                            prop_assert_eq!(got, Err(MapFull));
                        } else {
                            prop_assert_eq!(got, Ok(model.insert(k, v)));
                        }
                    }
                    Op::Remove(k) => prop_assert_eq!(map.remove(&k), model.remove_entry(&k)),
                    Op::Get(k) => prop_assert_eq!(map.get(&k), model.get(&k)),
                }
                prop_assert_eq!(map.len(), model.len());
            }
            for (k, v) in &model {
                prop_assert_eq!(map.get(k), Some(v));
            }
        }

        #[test]
        fn snapshot_restores_the_same_contents(entries in proptest::collection::hash_map(any::<u32>(), any::<u64>(), 0..100)) {
            let mut map = ReliableMap::with_capacity(100, 1);
            for (k, v) in &entries {
                map.insert(*k, *v).unwrap();
            }
            let mut bytes = Vec::new();
            let mut w = SnapshotWriter::new(&mut bytes, ServiceKind::Kvs, 1);
            map.snapshot(&mut w);
            w.finish();
            let mut r = SnapshotReader::open(&bytes, ServiceKind::Kvs, 1).unwrap();
            // Another seed: the index is rebuilt, not copied.
            let restored = ReliableMap::<u32, u64>::decode(&mut r, 100, 2).unwrap();
            r.finish().unwrap();
            prop_assert_eq!(restored.len(), entries.len());
            for (k, v) in &entries {
                prop_assert_eq!(restored.get(k), Some(v));
            }
        }
    }

    #[test]
    fn borrowed_lookup_and_duplicate_snapshot_entries() {
        use crate::collections::Bytes;
        let mut map: ReliableMap<Bytes<8>, u8> = ReliableMap::with_capacity(2, 0);
        let (v, inserted) = map
            .get_or_insert_with(&b"ab"[..], || (Bytes::new(b"ab").unwrap(), 1))
            .unwrap();
        assert!(inserted);
        *v += 1;
        assert_eq!(map.get(&b"ab"[..]), Some(&2));

        let mut bytes = Vec::new();
        let mut w = SnapshotWriter::new(&mut bytes, ServiceKind::Kvs, 1);
        w.count(2)
            .record(&5u32)
            .record(&1u8)
            .record(&5u32)
            .record(&2u8);
        w.finish();
        let mut r = SnapshotReader::open(&bytes, ServiceKind::Kvs, 1).unwrap();
        assert_eq!(
            ReliableMap::<u32, u8>::decode(&mut r, 4, 0).unwrap_err(),
            StateError::Corrupt
        );
    }
}
