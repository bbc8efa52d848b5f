//! A fixed-length array whose contents snapshot to bytes and restore.

use alloc::vec::Vec;
use core::ops::{Deref, DerefMut};

use super::record::Record;
use super::snapshot::{SnapshotReader, SnapshotWriter};
use crate::service::StateError;

/// A reliable array: a fixed number of records, allocated once at construction.
///
/// Its length never changes, so indexing and updating it never allocates. It derefs to a slice
/// for ordinary access.
#[derive(Debug, Clone, PartialEq)]
pub struct ReliableArray<T> {
    items: Vec<T>,
}

impl<T> ReliableArray<T> {
    /// Heap bytes an array of `len` records allocates.
    pub const fn bytes_for(len: usize) -> usize {
        len * size_of::<T>()
    }

    /// An array of `len` records, record `i` being `init(i)`.
    pub fn from_fn(len: usize, init: impl FnMut(usize) -> T) -> Self {
        Self {
            items: (0..len).map(init).collect(),
        }
    }

    /// Appends `len` and every record to a snapshot.
    pub fn snapshot(&self, out: &mut SnapshotWriter<'_>)
    where
        T: Record,
    {
        out.count(self.items.len());
        for item in &self.items {
            out.record(item);
        }
    }

    /// Reads an array written by [`ReliableArray::snapshot`]; its length must be `len`.
    pub fn decode(input: &mut SnapshotReader<'_>, len: usize) -> Result<Self, StateError>
    where
        T: Record,
    {
        if input.count(len)? != len {
            return Err(StateError::Corrupt);
        }
        let mut items = Vec::with_capacity(len);
        for _ in 0..len {
            items.push(input.record()?);
        }
        Ok(Self { items })
    }
}

impl<T: Clone> ReliableArray<T> {
    /// An array of `len` copies of `value`.
    pub fn filled(len: usize, value: T) -> Self {
        Self {
            items: alloc::vec![value; len],
        }
    }
}

impl<T> Deref for ReliableArray<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.items
    }
}

impl<T> DerefMut for ReliableArray<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::ServiceKind;

    #[test]
    fn snapshot_round_trip_and_length_check() {
        let mut array = ReliableArray::filled(5, 0u32);
        array[3] = 9;
        let mut bytes = Vec::new();
        let mut w = SnapshotWriter::new(&mut bytes, ServiceKind::Count, 1);
        array.snapshot(&mut w);
        w.finish();
        let mut r = SnapshotReader::open(&bytes, ServiceKind::Count, 1).unwrap();
        assert_eq!(ReliableArray::<u32>::decode(&mut r, 5).unwrap(), array);
        let mut r = SnapshotReader::open(&bytes, ServiceKind::Count, 1).unwrap();
        assert_eq!(
            ReliableArray::<u32>::decode(&mut r, 4).unwrap_err(),
            StateError::TooLarge
        );
        let mut r = SnapshotReader::open(&bytes, ServiceKind::Count, 1).unwrap();
        assert_eq!(
            ReliableArray::<u32>::decode(&mut r, 6).unwrap_err(),
            StateError::Corrupt
        );
    }
}
